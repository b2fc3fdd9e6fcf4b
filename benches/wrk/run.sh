#!/usr/bin/env bash
# Loopback load test of the `http` feature (BENCHMARKS.md, "Serving"): the example server (release
# build, in-memory store) with a project of 100 string flags, each with one targeting rule, then
#   wrk POST /api/v1/flags/evaluate (a client key, 1 024 users cycling)  and  wrk GET /health
# in the same run (health, evaluate, health, evaluate), then POST /api/experiments/{id}/assign. Needs `wrk` (Debian: apt-get install wrk). Usage: bash benches/wrk/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
cargo build --release --features http --example server
dir=$(mktemp -d)
export ABKIT_ADMIN_TOKEN=wrk-admin-token
target/release/examples/server --port 0 > "$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do addr=$(sed -n 's|^abkit serving on http://||p' "$dir/log"); [ -n "$addr" ] && break; sleep 0.1; done
base="http://$addr"
auth="Authorization: Bearer $ABKIT_ADMIN_TOKEN"
for i in $(seq 0 99); do
  curl -sf -o /dev/null -X POST "$base/api/v1/flags" -H "$auth" -d "{\"project_id\":\"bench\",\"key\":\"flag_$i\",\"flag_type\":\"string\",\"default_value\":\"off\",\"enabled\":true,\"rules\":[{\"id\":\"r$i\",\"condition\":{\"country\":{\"\$in\":[\"DE\",\"FR\"]}},\"value\":\"on\"}]}"
done
ABKIT_CLIENT_TOKEN=$(curl -sf -X POST "$base/api/keys" -H "$auth" -d '{"name":"wrk","project":"bench","scope":"client"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
export ABKIT_CLIENT_TOKEN
exp=$(curl -sf -X POST "$base/api/experiments" -H "$auth" -d '{"name":"wrk","projectId":"bench","variants":[{"name":"A","splitPercentage":50,"flowId":"a"},{"name":"B","splitPercentage":50,"flowId":"b"}]}' | sed -n 's/.*"id":"\(exp_[^"]*\)".*/\1/p')
curl -sf -o /dev/null -X POST "$base/api/experiments/$exp/start" -H "$auth"
export ABKIT_ASSIGN_PATH="/api/experiments/$exp/assign"
flags=$(curl -sf -X POST "$base/api/v1/flags/evaluate" -H "Authorization: Bearer $ABKIT_CLIENT_TOKEN" -d '{"project_id":"bench","environment":"production","context":{"user_id":"u","country":"DE"}}' | grep -o '"rule_id"' | wc -l)
echo "evaluate answers $flags flags"
echo "== GET /health"
wrk -t1 -c64 -d"${secs}s" --latency "$base/health"
echo "== POST /api/v1/flags/evaluate (100 flags)"
wrk -t1 -c64 -d"${secs}s" --latency -s benches/wrk/evaluate.lua "$base"
echo "== GET /health (again, after)"
wrk -t1 -c64 -d"${secs}s" --latency "$base/health"
echo "== POST /api/v1/flags/evaluate (100 flags, again)"
wrk -t1 -c64 -d"${secs}s" --latency -s benches/wrk/evaluate.lua "$base"
echo "== POST /api/experiments/{id}/assign (exposure recorded)"
wrk -t1 -c64 -d"${secs}s" --latency -s benches/wrk/assign.lua "$base"
