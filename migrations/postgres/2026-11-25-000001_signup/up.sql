-- Timestamps are UTC NaiveDateTime values written by the application,
-- so both backends compare them the same way.

CREATE TABLE newsletters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    send_at     TEXT NOT NULL DEFAULT '07:00',
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    created_at  TIMESTAMP NOT NULL
);

INSERT INTO newsletters (slug, title, description, send_at, timezone, created_at)
VALUES ('space-daily', 'Space Daily', 'The day''s space-exploration stories: launches, missions and discoveries.',
        '07:00', 'UTC', (now() AT TIME ZONE 'UTC'));

CREATE TABLE subscribers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL UNIQUE,
    name       TEXT,
    signup_ip  TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE subscriptions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id   BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    newsletter_id   BIGINT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at      TIMESTAMP NOT NULL,
    confirmed_at    TIMESTAMP,
    unsubscribed_at TIMESTAMP,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (subscriber_id, newsletter_id)
);
CREATE INDEX subscriptions_by_newsletter_status ON subscriptions (newsletter_id, status);

CREATE TABLE confirmation_tokens (
    token_hash    TEXT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    consumed_at   TIMESTAMP
);
CREATE INDEX confirmation_tokens_by_subscriber ON confirmation_tokens (subscriber_id);

CREATE TABLE outbound_emails (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT NOT NULL,
    subscriber_id    BIGINT REFERENCES subscribers (id) ON DELETE SET NULL,
    recipient_email  TEXT NOT NULL,
    recipient_name   TEXT,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL,
    list_unsubscribe TEXT,
    message_id       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    last_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP
);
-- Workers scan only what is still to send: finished rows never enter this index.
CREATE INDEX outbound_emails_due ON outbound_emails (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbound_emails_by_subscriber ON outbound_emails (subscriber_id, kind, created_at);

CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
