-- GET the URL given on the command line (wrk's default request) and report
-- percentiles in a form bench/run can parse.
--
-- No response() callback: with one, wrk hands every response to Lua, which costs the
-- load generator more CPU than the servers it measures on a 2-core machine. Failed
-- answers are counted by wrk itself (summary.errors.status: every status >= 400; none of
-- the measured servers redirects).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local report = require("report")

function done(summary, latency, requests)
  report.line(summary, latency, { non200 = summary.errors.status })
end
