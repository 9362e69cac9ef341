DROP TABLE mailboxes;
DROP INDEX subscribers_by_mailbox;
ALTER TABLE subscribers DROP COLUMN mailbox_key;
