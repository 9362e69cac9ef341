-- A session's CSRF token is now derived from its id (which only the browser holds), so a
-- copy of the database no longer carries one. Sessions open now keep working: their
-- token is derived the same way from the cookie.
ALTER TABLE operator_sessions DROP COLUMN csrf_token;
