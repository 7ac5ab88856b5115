#!/usr/bin/env bash
# Warm-invocation benchmark (issue 5): a Python no-op function through the whole pod
# (controller -> runner -> runtime), side by side and interleaved with
#   (a) nginx `return 200` on loopback — the HTTP floor, and
#   (b) the same handler served directly by /usr/bin/python3's ThreadingHTTPServer.
# Runs at 64 connections, and at 1 connection with every process pinned to CPU 0.
# Then cold starts (a function that is not warm) against `/usr/bin/python3 -c pass`.
#   EF_BUILD_DIR=build bench/invoke.sh [seconds per run, default 10] [rounds, default 2]
set -euo pipefail
export EF_SOURCE_DIR=${EF_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
export EF_BUILD_DIR=${EF_BUILD_DIR:-$EF_SOURCE_DIR/build}
duration=${1:-10}
rounds=${2:-2}
bench=$EF_SOURCE_DIR/bench
source "$EF_SOURCE_DIR/tests/integration/lib.sh"
require_root
for tool in wrk nginx; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing (apt-get install wrk nginx-light)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/ef-bench.XXXXXX)
pids=()
cleanup_bench() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}

start_floor_servers() { # $1: taskset prefix or empty
  local pin=$1
  nginx_port=$(free_port)
  cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$nginx_port; location / { return 200 '{}'; } }
}
NGINX
  $pin nginx -c "$work/nginx.conf"
  python_port=$(free_port)
  $pin /usr/bin/python3 "$bench/direct_python_server.py" "$python_port" &
  pids+=($!)
  sleep 0.5
}

stop_floor_servers() {
  kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  sleep 0.3
}

# run_wrk LABEL URL CONNS PIN: prints "label conns rps p50 p99".
run_wrk() {
  local label=$1 url=$2 conns=$3 pin=$4 threads=2
  [ "$conns" = 1 ] && threads=1
  $pin wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s "$bench/post.lua" "$url" >"$work/wrk.out"
  /usr/bin/python3 - "$label" "$conns" "$work/wrk.out" <<'PY'
import re, sys
label, conns, path = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p = {m.group(1): ms(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", text, re.M)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{label:10s} {conns:>5s} {rps:10.0f} {p['50']:8.3f} {p['99']:8.3f}" + (f"  non-2xx={errors.group(1)}" if errors else ""))
PY
}

series() { # $1 conns, $2 pin prefix
  local conns=$1 pin=$2
  for r in $(seq "$rounds"); do
    run_wrk nginx "http://127.0.0.1:$nginx_port/" "$conns" "$pin"
    run_wrk python "http://127.0.0.1:$python_port/" "$conns" "$pin"
    run_wrk easyfaas "$EF_BASE/2015-03-31/functions/noop/invocations" "$conns" "$pin"
  done
}

trap 'cleanup_bench; pod_cleanup' EXIT
echo "# machine: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ)"
echo "# server     conns      req/s  p50(ms)  p99(ms)"

# 64 connections, unpinned.
pod_start
trap 'cleanup_bench; pod_cleanup' EXIT
[ "$(create_function noop python3.11 app.handler "$bench/functions/noop")" = 201 ] || fail "create noop"
curl -fsS -X POST "$EF_BASE/2015-03-31/functions/noop/invocations" -d '{}' >/dev/null
start_floor_servers ""
series 64 ""
stop_floor_servers
pod_stop

# 1 connection, everything on CPU 0 (an unpinned single connection measures vCPU wake-ups).
taskset -cp 0 $$ >/dev/null
pod_start
trap 'cleanup_bench; pod_cleanup' EXIT
[ "$(create_function noop python3.11 app.handler "$bench/functions/noop")" = 201 ] || fail "create noop"
curl -fsS -X POST "$EF_BASE/2015-03-31/functions/noop/invocations" -d '{}' >/dev/null
start_floor_servers "taskset -c 0"
series 1 "taskset -c 0"
stop_floor_servers
taskset -cp 0-$(($(nproc) - 1)) $$ >/dev/null

# Cold starts: each invocation goes to a function that has no warm container.
echo "# cold start (ms): first invocation of a new function, vs /usr/bin/python3 -c pass"
for i in $(seq 20); do
  [ "$(create_function "cold$i" python3.11 app.handler "$bench/functions/noop")" = 201 ] || fail "create cold$i"
  curl -sS -o /dev/null -w '%{time_total}\n' -X POST "$EF_BASE/2015-03-31/functions/cold$i/invocations" -d '{}'
  /usr/bin/python3 -c 'import time,subprocess; t=time.monotonic(); subprocess.run(["/usr/bin/python3","-c","pass"]); print("py", time.monotonic()-t)'
done | /usr/bin/python3 -c '
import sys, statistics
cold, py = [], []
for line in sys.stdin:
    if line.startswith("py "): py.append(float(line.split()[1]) * 1000)
    else: cold.append(float(line) * 1000)
def pct(v, q): v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
print(f"easyfaas cold   p50 {pct(cold,.5):7.1f}  p99 {pct(cold,.99):7.1f}  (n={len(cold)})")
print(f"python3 -c pass p50 {pct(py,.5):7.1f}  p99 {pct(py,.99):7.1f}  (n={len(py)})")
'
pod_stop
