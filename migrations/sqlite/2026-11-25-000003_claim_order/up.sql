-- Workers claim the oldest due emails with ORDER BY next_attempt_at, id LIMIT n. With only
-- next_attempt_at indexed, PostgreSQL read and sorted every pending row on each claim once
-- the whole list was due (a digest), so a claim cost grew with the list. Indexing the full
-- sort key lets each claim read just its rows, in order.
DROP INDEX outbound_emails_due;
CREATE INDEX outbound_emails_due ON outbound_emails (next_attempt_at, id) WHERE status = 'pending';
