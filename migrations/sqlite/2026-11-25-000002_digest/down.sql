DROP INDEX outbound_emails_one_per_issue;
ALTER TABLE outbound_emails DROP COLUMN subscription_id;
ALTER TABLE outbound_emails DROP COLUMN issue_id;
DROP TABLE digest_issues;
DROP TABLE feeds;
DROP TABLE stories;
