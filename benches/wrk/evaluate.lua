-- wrk script: POST /api/v1/flags/evaluate for project "bench" (100 flags), cycling 1 024 users.
-- Used by benches/wrk/run.sh; the token comes from the environment (ABKIT_CLIENT_TOKEN).
local token = os.getenv("ABKIT_CLIENT_TOKEN")
local i = 0
request = function()
  i = (i + 1) % 1024
  local country = (i % 2 == 0) and "DE" or "US"
  local body = string.format(
    '{"project_id":"bench","environment":"production","context":{"user_id":"user-%08d","country":"%s"}}',
    i, country)
  return wrk.format("POST", "/api/v1/flags/evaluate",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
