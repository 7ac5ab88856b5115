#!/usr/bin/env bash
# Where the CPU goes per warm invocation (issue 5, docs/performance.md "Where the time goes"):
# a Python no-op function at N connections through the whole pod, once with a container per
# connection and once with the same function given a reserved concurrency (so that only that
# many runtimes take turns), each after a warm-up. For each it prints the requests per second
# and, per request, the user and system time of the runtimes and of the controller (from
# /proc/<pid>/stat) and the machine's user, system, interrupt and idle time (from /proc/stat).
# The counters tick every 10 ms: a run of several seconds gives microseconds per request to
# about ±1.
#   EF_BUILD_DIR=build bench/cpu_split.sh [seconds, default 8] [connections, default 64]
#     [reserved concurrency, default 2]
set -euo pipefail
export EF_SOURCE_DIR=${EF_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
export EF_BUILD_DIR=${EF_BUILD_DIR:-$EF_SOURCE_DIR/build}
seconds=${1:-8}
conns=${2:-64}
reserved=${3:-2}
bench=$EF_SOURCE_DIR/bench
source "$EF_SOURCE_DIR/tests/integration/lib.sh"
require_root
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
hz=$(getconf CLK_TCK)

# ticks PID...: "user system" clock ticks summed over the processes (those gone count 0).
ticks() {
  local p u=0 s=0 f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    u=$((u + ${f% *}))
    s=$((s + ${f#* }))
  done
  echo "$u $s"
}

# machine: "user system irq+softirq idle" ticks of all CPUs.
machine() {
  awk '/^cpu / { print $2 + $3, $4, $7 + $8, $5 }' /proc/stat
}

# measure LABEL FUNCTION: warm-up, then one measured run; prints a line of figures.
measure() {
  local label=$1 fn=$2 url rts ctl r0 c0 m0 r1 c1 m1 requests rps
  url=$EF_BASE/2015-03-31/functions/$fn/invocations
  wrk -t1 -c"$conns" -d5s -s "$bench/post.lua" "$url" >/dev/null
  sleep 2 # the warm-up's cold starts settle
  wrk -t1 -c"$conns" -d3s -s "$bench/post.lua" "$url" >/dev/null
  # shellcheck disable=SC2207 # pids are words
  rts=($(pgrep -f '/var/runtime/python/bootstrap' || true))
  ctl=$CONTROLLER_PID
  r0=$(ticks "${rts[@]}")
  c0=$(ticks "$ctl")
  m0=$(machine)
  wrk -t2 -c"$conns" -d"${seconds}s" -s "$bench/post.lua" "$url" >"$EF_DATA/wrk.out"
  r1=$(ticks "${rts[@]}")
  c1=$(ticks "$ctl")
  m1=$(machine)
  requests=$(awk '/requests in/ { print $1 }' "$EF_DATA/wrk.out")
  rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$EF_DATA/wrk.out")
  /usr/bin/python3 - "$label" "$requests" "$rps" "$hz" "$r0" "$r1" "$c0" "$c1" "$m0" "$m1" <<'PY'
import sys
label, n, rps, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
r0, r1, c0, c1, m0, m1 = (list(map(int, a.split())) for a in sys.argv[5:11])
us = lambda d: d * 1e6 / hz / n
d = lambda a, b, i: us(b[i] - a[i])
print(f"{label:26s} {rps:>7s} req/s | runtimes {d(r0, r1, 0):5.1f} + {d(r0, r1, 1):5.1f} | "
      f"controller {d(c0, c1, 0):5.1f} + {d(c0, c1, 1):5.1f} | machine {d(m0, m1, 0):5.1f} "
      f"+ {d(m0, m1, 1):5.1f} + irq {d(m0, m1, 2):5.1f}, idle {d(m0, m1, 3):5.1f}")
PY
}

EF_FUNCLET_ARGS="--max-containers 96" pod_start
trap 'pod_cleanup' EXIT
for fn in noop noopr; do
  [ "$(create_function $fn python3.11 app.handler "$bench/functions/noop" ',"Timeout":30')" = 201 ] ||
    fail "create $fn: $(cat "$EF_DATA/create-$fn.json")"
done
curl -fsS -o /dev/null -X PUT "$EF_BASE/2017-10-31/functions/noopr/concurrency" \
  -H 'Content-Type: application/json' -d "{\"ReservedConcurrentExecutions\": $reserved}" ||
  fail "PutFunctionConcurrency noopr $reserved"
echo "# $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ), $conns connections, ${seconds}s runs"
echo "# microseconds of CPU per request: user + system"
measure "a container per connection" noop
measure "reserved concurrency $reserved" noopr
