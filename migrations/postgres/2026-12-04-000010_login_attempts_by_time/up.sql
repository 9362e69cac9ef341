-- A login attempt is a row from before its password is checked (it counts as a failure
-- until it succeeds), and every reservation forgets the rows older than the limits'
-- window: that sweep reads this index instead of the whole table.
CREATE INDEX login_failures_by_time ON login_failures (failed_at);
