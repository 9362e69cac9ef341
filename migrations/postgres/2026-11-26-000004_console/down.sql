DROP INDEX outbound_emails_paused;
DROP INDEX outbound_emails_failed;
DROP INDEX subscriptions_by_unsubscribed_at;
DROP INDEX subscriptions_by_created_at;
DROP INDEX outbound_emails_by_issue_status;
UPDATE outbound_emails SET status = 'pending' WHERE status = 'paused';
UPDATE outbound_emails SET status = 'skipped' WHERE status = 'cancelled';
ALTER TABLE outbound_emails DROP CONSTRAINT outbound_emails_status_check;
ALTER TABLE outbound_emails ADD CONSTRAINT outbound_emails_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'skipped'));
ALTER TABLE subscribers DROP COLUMN consent_note;
DROP TABLE login_failures;
DROP TABLE operator_sessions;
DROP TABLE operators;
