DROP TABLE app_secrets;
DROP TABLE outbound_emails;
DROP TABLE confirmation_tokens;
DROP TABLE subscriptions;
DROP TABLE subscribers;
DROP TABLE newsletters;
