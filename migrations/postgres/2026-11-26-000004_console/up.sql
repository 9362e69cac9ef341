-- The operator console: accounts, server-side sessions and the login failures that
-- rate limits count. Sessions and their CSRF tokens live here so that logout and a
-- password change end them for every web process at once.

CREATE TABLE operators (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_key TEXT NOT NULL,
    ip        TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (email_key, failed_at);
CREATE INDEX login_failures_ip ON login_failures (ip, failed_at);

-- Why an imported reader may be mailed without a double opt-in, in the operator's words.
ALTER TABLE subscribers ADD COLUMN consent_note TEXT;

-- An operator may pause a digest send (its pending rows become 'paused', which workers do
-- not claim) and cancel it (they become 'cancelled').
ALTER TABLE outbound_emails DROP CONSTRAINT outbound_emails_status_check;
ALTER TABLE outbound_emails ADD CONSTRAINT outbound_emails_status_check
    CHECK (status IN ('pending', 'paused', 'sent', 'failed', 'skipped', 'cancelled'));
-- The console counts an issue's deliveries by state while it sends, and how many finished
-- in the last minute (its send rate).
CREATE INDEX outbound_emails_by_issue_status ON outbound_emails (issue_id, status, finished_at);

-- The dashboard: signups and unsubscribes per day, and the queue's failed and paused
-- emails, each read from an index instead of a scan of every row. The partial indexes
-- hold only the rows they count, so sending (pending -> sent) never touches them.
CREATE INDEX subscriptions_by_created_at ON subscriptions (created_at);
CREATE INDEX subscriptions_by_unsubscribed_at ON subscriptions (unsubscribed_at) WHERE unsubscribed_at IS NOT NULL;
CREATE INDEX outbound_emails_failed ON outbound_emails (finished_at) WHERE status = 'failed';
CREATE INDEX outbound_emails_paused ON outbound_emails (issue_id) WHERE status = 'paused';
