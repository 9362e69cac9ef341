-- The per-address limits on confirmation emails count the mailbox, not the spelling:
-- `SubscriberEmail::mailbox_key` (the address lower-cased, without a +tag, and at Gmail
-- without dots). Existing rows get the key that function gives, computed here once.
ALTER TABLE subscribers ADD COLUMN mailbox_key TEXT;
UPDATE subscribers SET mailbox_key =
    CASE WHEN split_part(email_key, '@', 2) IN ('gmail.com', 'googlemail.com')
         THEN replace(split_part(split_part(email_key, '@', 1), '+', 1), '.', '') || '@gmail.com'
         ELSE split_part(split_part(email_key, '@', 1), '+', 1) || '@' || split_part(email_key, '@', 2)
    END;
-- A signup reads the confirmation emails of every subscriber of its mailbox.
CREATE INDEX subscribers_by_mailbox ON subscribers (mailbox_key);

-- One row per mailbox that signups have named. On PostgreSQL every signup writes its
-- mailbox's row first, in key order: the row lock serialises signups of one mailbox,
-- whatever the spelling and whichever process takes them, so two cannot both pass its
-- limits. On SQLite (one writer) only signups that store nothing else write it, so that
-- every commit costs the same whether the address was new, known or held back.
CREATE TABLE mailboxes (
    mailbox_key    TEXT PRIMARY KEY,
    last_signup_at TIMESTAMP NOT NULL
);
