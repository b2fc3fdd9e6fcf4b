-- wrk script: POST /api/experiments/{id}/assign (ABKIT_ASSIGN_PATH) for 1 024 users cycling: each
-- call decides and records the exposure (a storage call, on tokio's blocking pool).
local requests = {}
local n = 1024
local i = 0

init = function(args)
  local token = os.getenv("ABKIT_CLIENT_TOKEN")
  local path = os.getenv("ABKIT_ASSIGN_PATH")
  for u = 0, n - 1 do
    local body = string.format('{"userId":"user-%08d","attributes":{"country":"DE"}}', u)
    requests[u] = wrk.format("POST", path,
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
