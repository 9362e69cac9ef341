-- POST /subscriptions with a new address on every request:
--   email=u<thread>-<counter>-<random>@bench.test&name=Bench+Reader
-- wrk runs each thread's Lua in its own state, so setup() (which runs in the main
-- state) hands every thread its own id; the counter makes addresses unique within a
-- thread and the random part makes them unique across runs against the same database.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local report = require("report")

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  threads[#threads + 1] = thread
end

function init(args)
  counter = 0
  -- Seed per thread so two threads never draw the same sequence.
  math.randomseed(os.time() * 1000 + id * 7919 + math.floor(os.clock() * 1e6))
  salt = string.format("%06x", math.random(0, 0xffffff))
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function request()
  counter = counter + 1
  local body = string.format(
    "email=u%d-%d-%s%%40bench.test&name=Bench+Reader", id, counter, salt)
  return wrk.format("POST", nil, headers, body)
end

-- No response() callback (see get.lua): wrk counts every status >= 400 itself, and the
-- signup endpoint answers 200 or an error status, never a redirect.
function done(summary, latency, requests)
  report.line(summary, latency, { non200 = summary.errors.status })
end
