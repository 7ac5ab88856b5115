#!/usr/bin/env bash
# Warm-invocation benchmark (issue 5): a Python no-op function through the whole pod
# (controller -> runner -> runtime), side by side and interleaved with
#   (a) nginx `return 200` on loopback — the HTTP floor, and
#   (b) the same handler served directly by /usr/bin/python3's ThreadingHTTPServer.
# Runs at 64 connections, and at 1 connection with every process pinned to CPU 0. Each series
# starts with a warm-up run against every server (for the pod: until every container it needed
# is warm), so that the measured runs see warm containers only. Then cold starts (a function
# that is not warm, with a cold container ready in the pool) against `/usr/bin/python3 -c pass`.
#   EF_BUILD_DIR=build bench/invoke.sh [seconds per run, default 10] [rounds, default 2]
# Environment:
#   EF_BENCH_WARMUP     seconds of warm-up per server and series (default 5)
#   EF_BENCH_COLD       number of cold starts measured (default 20)
#   EF_BENCH_BOOTSTRAP  a Python runtime bootstrap to use instead of the bundled one (A/B runs)
#   EF_BENCH_RESERVED   N: at 64 connections also measure the function with a reserved
#                       concurrency of N (PutFunctionConcurrency; the other connections'
#                       invocations wait in its queue), as "easyfaas-rN"
set -euo pipefail
export EF_SOURCE_DIR=${EF_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
export EF_BUILD_DIR=${EF_BUILD_DIR:-$EF_SOURCE_DIR/build}
duration=${1:-10}
rounds=${2:-2}
warmup=${EF_BENCH_WARMUP:-5}
colds=${EF_BENCH_COLD:-20}
bench=$EF_SOURCE_DIR/bench
source "$EF_SOURCE_DIR/tests/integration/lib.sh"
require_root
for tool in wrk nginx; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing (apt-get install wrk nginx-light)" >&2; exit 1; }
done
if [ -n "${EF_BENCH_BOOTSTRAP:-}" ] && [ ! -f "$EF_BENCH_BOOTSTRAP" ]; then
  echo "bench: EF_BENCH_BOOTSTRAP=$EF_BENCH_BOOTSTRAP is not a file" >&2
  exit 1
fi

work=$(mktemp -d /tmp/ef-bench.XXXXXX)
results=$work/results
: >"$results"
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

# The pod with the no-op function, warm once. Its Timeout is 30 s rather than Lambda's default
# of 3 s: the warm-up at 64 connections starts dozens of containers at once on a small machine,
# and the benchmark is about the warm path, not about who times out during that rush.
start_pod() {
  # Room for both functions' containers at 64 connections (64 + 8, funclet's spares aside), so
  # that the runs measure warm containers rather than one function reclaiming the other's.
  EF_FUNCLET_ARGS="--max-containers 96" pod_start
  trap 'cleanup_bench; pod_cleanup' EXIT
  if [ -n "${EF_BENCH_BOOTSTRAP:-}" ]; then
    # Containers see the runtime directory of the pod's data dir, so this affects this pod only.
    install -m 0755 "$EF_BENCH_BOOTSTRAP" "$EF_DATA/runtime/python/bootstrap"
  fi
  [ "$(create_function noop python3.11 app.handler "$bench/functions/noop" ',"Timeout":30')" = 201 ] ||
    fail "create noop: $(cat "$EF_DATA/create-noop.json")"
  curl -fsS -X POST "$EF_BASE/2015-03-31/functions/noop/invocations" -d '{}' >/dev/null
  # The same function with 8 invocations per container (PerExecutionEnvironmentMaxConcurrency;
  # the Python runtime answers with 8 worker processes): fewer runners, each serving several.
  [ "$(create_function noop8 python3.11 app.handler "$bench/functions/noop" \
    ',"Timeout":30,"PerExecutionEnvironmentMaxConcurrency":8')" = 201 ] ||
    fail "create noop8: $(cat "$EF_DATA/create-noop8.json")"
  if [ -n "${EF_BENCH_RESERVED:-}" ]; then
    [ "$(create_function noopr python3.11 app.handler "$bench/functions/noop" ',"Timeout":30')" = 201 ] ||
      fail "create noopr: $(cat "$EF_DATA/create-noopr.json")"
    curl -fsS -o /dev/null -X PUT "$EF_BASE/2017-10-31/functions/noopr/concurrency" \
      -H 'Content-Type: application/json' -d "{\"ReservedConcurrentExecutions\": $EF_BENCH_RESERVED}" ||
      fail "PutFunctionConcurrency noopr $EF_BENCH_RESERVED"
  fi
}

# pool_states: "N idle, M busy, ..." for the containers of the pod, as the controller sees them.
pool_states() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import collections, json, sys
c = collections.Counter(x["state"] for x in json.load(sys.stdin))
print(", ".join("%d %s" % (n, s) for s, n in sorted(c.items())) or "no containers")'
}

# wait_pool_settled: until no container is starting or busy (the warm-up's cold starts are done).
wait_pool_settled() {
  local states
  for _ in $(seq 120); do
    states=$(pool_states)
    grep -Eq 'starting|busy' <<<"$states" || return 0
    sleep 0.5
  done
  echo "# warning: the pool did not settle: $states"
}

# run_wrk LABEL URL CONNS PIN [SECONDS]: prints "label conns rps p50 p99" and records it; rps
# counts successful (2xx) responses only, and the notes say how many others there were.
run_wrk() {
  local label=$1 url=$2 conns=$3 pin=$4 seconds=${5:-$duration} threads=2
  [ "$conns" = 1 ] && threads=1
  $pin wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency -s "$bench/post.lua" "$url" >"$work/wrk.out"
  /usr/bin/python3 - "$label" "$conns" "$work/wrk.out" <<'PY' | tee -a "$results"
import re, sys
label, conns, path = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
seconds = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
p = {m.group(1): ms(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", text, re.M)}
notes = []
failed = 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if m:
    failed = int(m.group(1))
    notes.append("non-2xx=%d (latencies include them)" % failed)
rps = (int(total.group(1)) - failed) / seconds
m = re.search(r"Socket errors: (.*)", text)
if m:
    notes.append("socket errors: " + m.group(1))
print(f"{label:10s} {conns:>5s} {rps:10.0f} {p['50']:8.3f} {p['99']:8.3f}" + ("  " + "; ".join(notes) if notes else ""))
PY
}

urls() {
  echo "nginx http://127.0.0.1:$nginx_port/"
  echo "python http://127.0.0.1:$python_port/"
  echo "easyfaas $EF_BASE/2015-03-31/functions/noop/invocations"
  # Several invocations per container only matter when there are several at once.
  [ "$series_conns" = 1 ] || echo "easyfaas-c8 $EF_BASE/2015-03-31/functions/noop8/invocations"
  [ "$series_conns" = 1 ] || [ -z "${EF_BENCH_RESERVED:-}" ] ||
    echo "easyfaas-r$EF_BENCH_RESERVED $EF_BASE/2015-03-31/functions/noopr/invocations"
}

series() { # $1 conns, $2 pin prefix
  local conns=$1 pin=$2 label url
  series_conns=$conns
  while read -r label url; do
    $pin wrk -t1 -c"$conns" -d"${warmup}s" -s "$bench/post.lua" "$url" >/dev/null
  done < <(urls)
  wait_pool_settled
  echo "# after the warm-up, the pod's containers: $(pool_states)"
  for _ in $(seq "$rounds"); do
    while read -r label url; do
      run_wrk "$label" "$url" "$conns" "$pin"
    done < <(urls)
  done
  echo "# after the runs, the pod's containers: $(pool_states)"
}

trap 'cleanup_bench; pod_cleanup' EXIT
echo "# machine: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ${duration}s per run, $rounds interleaved rounds, ${warmup}s warm-up per server${EF_BENCH_BOOTSTRAP:+, bootstrap $EF_BENCH_BOOTSTRAP}"
echo "# server     conns  2xx req/s  p50(ms)  p99(ms)"

# 64 connections, unpinned.
start_pod
start_floor_servers ""
series 64 ""
stop_floor_servers
pod_remove

# 1 connection, everything on CPU 0 (an unpinned single connection measures vCPU wake-ups).
cpus=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/$$/status) # restored afterwards
taskset -cp 0 $$ >/dev/null
start_pod
start_floor_servers "taskset -c 0"
series 1 "taskset -c 0"
stop_floor_servers
pod_remove
taskset -cp "$cpus" $$ >/dev/null

# Cold starts: each invocation goes to a function that has no warm container; the pause before
# it lets funclet refill its pool, so that a cold container is ready, as the target assumes.
start_pod
echo "# cold start (ms): first invocation of a new function, vs /usr/bin/python3 -c pass"
for i in $(seq "$colds"); do
  [ "$(create_function "cold$i" python3.11 app.handler "$bench/functions/noop")" = 201 ] || fail "create cold$i"
  sleep 0.5
  curl -sS -o /dev/null -w '%{time_total}\n' -X POST "$EF_BASE/2015-03-31/functions/cold$i/invocations" -d '{}'
  /usr/bin/python3 -c 'import time,subprocess; t=time.monotonic(); subprocess.run(["/usr/bin/python3","-c","pass"]); print("py", time.monotonic()-t)'
done | /usr/bin/python3 -c '
import sys
cold, py = [], []
for line in sys.stdin:
    if line.startswith("py "): py.append(float(line.split()[1]) * 1000)
    else: cold.append(float(line) * 1000)
def pct(v, q): v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
print(f"easyfaas cold   p50 {pct(cold,.5):7.1f}  p99 {pct(cold,.99):7.1f}  (n={len(cold)})")
print(f"python3 -c pass p50 {pct(py,.5):7.1f}  p99 {pct(py,.99):7.1f}  (n={len(py)})")
' | tee -a "$results"
pod_remove

echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians over the rounds, and the issue's targets.
/usr/bin/python3 - "$results" <<'PY'
import statistics, sys
runs, cold = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if (f[0] in ("nginx", "python") or f[0].startswith("easyfaas")) and f[1].isdigit():
        runs.setdefault((f[0], f[1]), []).append((float(f[2]), float(f[3]), float(f[4])))
    elif f[0] == "easyfaas" and f[1] == "cold":
        cold["easyfaas"] = float(f[3])
    elif f[0] == "python3":
        cold["python"] = float(f[4])
def med(server, conns, i):
    return statistics.median(r[i] for r in runs[(server, conns)])
print("# medians over the rounds  2xx req/s  p50(ms)  p99(ms)")
for (server, conns) in sorted(runs, key=lambda k: (-int(k[1]), k[0])):
    print(f"# {server:10s} {conns:>5s} {med(server, conns, 0):12.0f} {med(server, conns, 1):8.3f} {med(server, conns, 2):8.3f}")
if ("easyfaas", "64") in runs and ("python", "64") in runs:
    print(f"# target 64 connections: easyfaas/python throughput {med('easyfaas', '64', 0) / med('python', '64', 0):.2f}x (target >= 2x)")
if ("easyfaas-c8", "64") in runs and ("python", "64") in runs:
    print(f"# 64 connections, 8 invocations per container: easyfaas-c8/python throughput {med('easyfaas-c8', '64', 0) / med('python', '64', 0):.2f}x")
for server, conns in runs:
    if server.startswith("easyfaas-r") and ("python", conns) in runs:
        print(f"# {conns} connections, reserved concurrency {server[10:]}: {server}/python throughput {med(server, conns, 0) / med('python', conns, 0):.2f}x")
if ("easyfaas", "1") in runs and ("python", "1") in runs:
    print(f"# target 1 pinned connection: easyfaas/python p50 {med('easyfaas', '1', 1) / med('python', '1', 1):.2f}x (target <= 1.5x)")
if len(cold) == 2:
    print(f"# target cold start: easyfaas p50 - python3 -c pass p50 = {cold['easyfaas'] - cold['python']:.1f} ms (target <= 10 ms)")
PY
