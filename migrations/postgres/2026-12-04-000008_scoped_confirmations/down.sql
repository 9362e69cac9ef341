ALTER TABLE subscriptions DROP COLUMN confirmation_token_hash;
