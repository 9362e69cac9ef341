-- Shared by the wrk scripts: prints one machine-readable line that bench/run parses.
-- Latencies are in microseconds; "non200" counts failed answers (wrk's
-- summary.errors.status: statuses >= 400).

local report = {}

function report.line(summary, latency, extra)
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"connect_errors":%d', e.connect),
    string.format('"read_errors":%d', e.read),
    string.format('"write_errors":%d', e.write),
    string.format('"status_errors":%d', e.status),
    string.format('"timeouts":%d', e.timeout),
    string.format('"p50_us":%d', latency:percentile(50)),
    string.format('"p99_us":%d', latency:percentile(99)),
    string.format('"p999_us":%d', latency:percentile(99.9)),
    string.format('"max_us":%d', latency.max),
    string.format('"mean_us":%.1f', latency.mean),
  }
  for k, v in pairs(extra or {}) do
    parts[#parts + 1] = string.format('"%s":%d', k, v)
  end
  io.write("BENCH-JSON {" .. table.concat(parts, ",") .. "}\n")
end

return report
