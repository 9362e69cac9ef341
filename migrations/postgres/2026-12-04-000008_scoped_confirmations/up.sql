-- A confirmation link confirms only the subscriptions its email asked about: each
-- pending subscription names the token that may confirm it (its SHA-256, as stored in
-- confirmation_tokens). Links already sent keep confirming what they confirmed before:
-- every pending subscription of their subscriber.
ALTER TABLE subscriptions ADD COLUMN confirmation_token_hash TEXT;
UPDATE subscriptions SET confirmation_token_hash = (
    SELECT t.token_hash FROM confirmation_tokens t
    WHERE t.subscriber_id = subscriptions.subscriber_id AND t.consumed_at IS NULL
    ORDER BY t.created_at DESC, t.token_hash
    LIMIT 1
)
WHERE status = 'pending';
