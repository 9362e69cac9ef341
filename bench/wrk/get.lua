-- GET the URL given on the command line (wrk's default request) and report
-- percentiles in a form bench/run can parse.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local report = require("report")

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  non200 = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + t:get("non200")
  end
  report.line(summary, latency, { non200 = n })
end
