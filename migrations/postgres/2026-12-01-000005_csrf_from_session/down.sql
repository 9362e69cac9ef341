-- Sessions from before the rollback have no stored token and must log in again.
ALTER TABLE operator_sessions ADD COLUMN csrf_token TEXT NOT NULL DEFAULT '';
DELETE FROM operator_sessions;
