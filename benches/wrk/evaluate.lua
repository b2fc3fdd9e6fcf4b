-- wrk script: POST /api/v1/flags/evaluate for project "bench" (100 flags), cycling 1 024 users.
-- The requests are built once (wrk's usual idiom), so the load generator spends per request what
-- it spends on GET /health. Used by benches/wrk/run.sh; the token comes from ABKIT_CLIENT_TOKEN.
local requests = {}
local n = 1024
local i = 0

init = function(args)
  local token = os.getenv("ABKIT_CLIENT_TOKEN")
  for u = 0, n - 1 do
    local country = (u % 2 == 0) and "DE" or "US"
    local body = string.format(
      '{"project_id":"bench","environment":"production","context":{"user_id":"user-%08d","country":"%s"}}',
      u, country)
    requests[u] = wrk.format("POST", "/api/v1/flags/evaluate",
      { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
  end
end

request = function()
  i = (i + 1) % n
  return requests[i]
end

done = function(summary, latency, requests)
  io.write(string.format("errors (non-2xx, connect, read, write, timeout): %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
