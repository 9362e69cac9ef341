UPDATE outbound_emails SET status = 'pending' WHERE status = 'paused';
UPDATE outbound_emails SET status = 'skipped' WHERE status = 'cancelled';
DROP INDEX outbound_emails_by_issue_status;
ALTER TABLE subscribers DROP COLUMN consent_note;
DROP TABLE login_failures;
DROP TABLE operator_sessions;
DROP TABLE operators;
