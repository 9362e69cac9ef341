-- The operator console: accounts, server-side sessions and the login failures that
-- rate limits count. Sessions and their CSRF tokens live here so that logout and a
-- password change end them for every web process at once.

CREATE TABLE operators (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    email               TEXT NOT NULL,
    email_key           TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    password_changed_at TIMESTAMP NOT NULL
);

-- The session id is never stored, only its SHA-256.
CREATE TABLE operator_sessions (
    id_hash      TEXT PRIMARY KEY,
    operator_id  BIGINT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ip           TEXT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

CREATE TABLE login_failures (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    email_key TEXT NOT NULL,
    ip        TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (email_key, failed_at);
CREATE INDEX login_failures_ip ON login_failures (ip, failed_at);

-- Why an imported reader may be mailed without a double opt-in, in the operator's words.
ALTER TABLE subscribers ADD COLUMN consent_note TEXT;

-- An operator may pause a digest send (its pending rows become 'paused', which workers do
-- not claim) and cancel it (they become 'cancelled'). SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt; nothing references it.
CREATE TABLE outbound_emails_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    subscriber_id    BIGINT REFERENCES subscribers (id) ON DELETE SET NULL,
    recipient_email  TEXT NOT NULL,
    recipient_name   TEXT,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL,
    list_unsubscribe TEXT,
    message_id       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'paused', 'sent', 'failed', 'skipped', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    last_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP,
    issue_id         BIGINT REFERENCES digest_issues (id) ON DELETE CASCADE,
    subscription_id  BIGINT REFERENCES subscriptions (id) ON DELETE SET NULL
);
INSERT INTO outbound_emails_new
    (id, kind, subscriber_id, recipient_email, recipient_name, subject, body_text, body_html,
     list_unsubscribe, message_id, status, attempts, next_attempt_at, last_error, created_at,
     finished_at, issue_id, subscription_id)
SELECT id, kind, subscriber_id, recipient_email, recipient_name, subject, body_text, body_html,
       list_unsubscribe, message_id, status, attempts, next_attempt_at, last_error, created_at,
       finished_at, issue_id, subscription_id
FROM outbound_emails;
DROP TABLE outbound_emails;
ALTER TABLE outbound_emails_new RENAME TO outbound_emails;
CREATE INDEX outbound_emails_due ON outbound_emails (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbound_emails_by_subscriber ON outbound_emails (subscriber_id, kind, created_at);
CREATE UNIQUE INDEX outbound_emails_one_per_issue ON outbound_emails (issue_id, subscription_id);
CREATE INDEX outbound_emails_by_issue_status ON outbound_emails (issue_id, status, finished_at);

-- The dashboard: signups and unsubscribes per day, and the queue's failed and paused
-- emails, each read from an index instead of a scan of every row. The partial indexes
-- hold only the rows they count, so sending (pending -> sent) never touches them.
CREATE INDEX subscriptions_by_created_at ON subscriptions (created_at);
CREATE INDEX subscriptions_by_unsubscribed_at ON subscriptions (unsubscribed_at) WHERE unsubscribed_at IS NOT NULL;
CREATE INDEX outbound_emails_failed ON outbound_emails (finished_at) WHERE status = 'failed';
CREATE INDEX outbound_emails_paused ON outbound_emails (issue_id) WHERE status = 'paused';
