-- Stories, the feeds they come from, and the daily digest: one issue per newsletter and
-- day, one queued email per confirmed subscriber of that issue.

CREATE TABLE stories (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    newsletter_id BIGINT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    guid          TEXT NOT NULL,
    url           TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary_html  TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT '',
    published_at  TIMESTAMP NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    UNIQUE (newsletter_id, guid)
);
CREATE INDEX stories_by_newsletter_time ON stories (newsletter_id, published_at);

CREATE TABLE feeds (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    newsletter_id   BIGINT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    etag            TEXT,
    last_modified   TEXT,
    last_polled_at  TIMESTAMP,
    last_success_at TIMESTAMP,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL,
    UNIQUE (newsletter_id, url)
);

CREATE TABLE digest_issues (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    newsletter_id BIGINT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    issue_date    DATE NOT NULL,
    subject       TEXT NOT NULL,
    body_text     TEXT NOT NULL,
    body_html     TEXT NOT NULL,
    story_count   INTEGER NOT NULL,
    stories_json  TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    fanned_out_at TIMESTAMP,
    UNIQUE (newsletter_id, issue_date)
);

-- A digest delivery is an outbound email like any other, so one queue, one worker and
-- one retry policy serve both; its body is rendered from the issue at send time. NULLs are
-- distinct in a unique index, so transactional email (no issue) never conflicts.
ALTER TABLE outbound_emails ADD COLUMN issue_id BIGINT REFERENCES digest_issues (id) ON DELETE CASCADE;
ALTER TABLE outbound_emails ADD COLUMN subscription_id BIGINT REFERENCES subscriptions (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX outbound_emails_one_per_issue ON outbound_emails (issue_id, subscription_id);
