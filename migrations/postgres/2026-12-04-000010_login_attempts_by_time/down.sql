DROP INDEX login_failures_by_time;
