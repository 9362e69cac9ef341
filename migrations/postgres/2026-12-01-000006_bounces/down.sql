DROP TABLE bounce_events;
ALTER TABLE subscribers DROP COLUMN bounced_at;
