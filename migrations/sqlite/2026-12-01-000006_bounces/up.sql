-- A subscriber whose mail keeps bouncing is marked bounced and sent nothing more,
-- until an operator clears the mark.
ALTER TABLE subscribers ADD COLUMN bounced_at TIMESTAMP;
-- Few are bounced: the dashboard counts them from this small index, not the whole list.
CREATE INDEX subscribers_bounced ON subscribers (bounced_at) WHERE bounced_at IS NOT NULL;

-- One row per bounce, complaint, or operator's clearing of the mark: the subscriber's
-- bounce history, and what the score is summed from.
CREATE TABLE bounce_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id     BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'cleared')),
    source            TEXT NOT NULL CHECK (source IN ('smtp', 'webhook', 'console')),
    reason            TEXT NOT NULL DEFAULT '',
    outbound_email_id BIGINT,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX bounce_events_by_subscriber ON bounce_events (subscriber_id, created_at);
-- One bounce per email, however often its outcome is written (a lease that ran out).
CREATE UNIQUE INDEX bounce_events_by_email ON bounce_events (outbound_email_id);
