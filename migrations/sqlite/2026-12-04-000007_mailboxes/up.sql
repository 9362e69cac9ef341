-- The per-address limits on confirmation emails count the mailbox, not the spelling:
-- `SubscriberEmail::mailbox_key` (the address lower-cased, without a +tag, and at Gmail
-- without dots). Existing rows get the key that function gives, computed here once,
-- a step at a time: first the local part, then without its tag, without Gmail's dots,
-- and last the domain (googlemail.com as gmail.com).
ALTER TABLE subscribers ADD COLUMN mailbox_key TEXT;
UPDATE subscribers SET mailbox_key = substr(email_key, 1, instr(email_key, '@') - 1);
UPDATE subscribers SET mailbox_key = substr(mailbox_key, 1, instr(mailbox_key, '+') - 1)
WHERE instr(mailbox_key, '+') > 0;
UPDATE subscribers SET mailbox_key = replace(mailbox_key, '.', '')
WHERE substr(email_key, instr(email_key, '@') + 1) IN ('gmail.com', 'googlemail.com');
UPDATE subscribers SET mailbox_key = mailbox_key || '@' ||
    CASE WHEN substr(email_key, instr(email_key, '@') + 1) IN ('gmail.com', 'googlemail.com')
         THEN 'gmail.com'
         ELSE substr(email_key, instr(email_key, '@') + 1)
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
