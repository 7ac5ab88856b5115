#!/usr/bin/env bash
# A/B of one setting of the invocation path, on one build (or of two builds): warm invocations of the Python no-op
# function through the whole pod under each of the setting's two values, interleaved: each
# round starts a pod of each value in turn (which goes first alternates), warms it up, and
# measures it twice with wrk, at 1 connection with every process on CPU 0 and at 64
# connections unpinned; then cold starts: the first invocation of each of 10 new functions,
# with a cold container ready in funclet's pool.
#   EF_BUILD_DIR=build bench/ab.sh EXPERIMENT [seconds per run, default 8] [rounds, default 3]
# EXPERIMENT is one of
#   sched     the scheduling policy of the controller and the containers: other (SCHED_OTHER:
#             --sched-policy other, --container-sched-policy other) and batch (the defaults);
#   handover  --runtime-handover off and on (the default; docs/handover.md);
#   builds    the build in EF_BENCH_BUILD_A (a) and the one in EF_BENCH_BUILD_B (b), with the
#             same settings and the runtimes of EF_SOURCE_DIR: a change of the code measured
#             against the commit before it.
# EF_BENCH_SERIES lists the series to run (default "1 64 cold").
set -euo pipefail
export EF_SOURCE_DIR=${EF_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
export EF_BUILD_DIR=${EF_BUILD_DIR:-$EF_SOURCE_DIR/build}
experiment=${1:-}
duration=${2:-8}
rounds=${3:-3}
case $experiment in
sched) variants="other batch" ;;
handover) variants="off on" ;;
builds)
  variants="a b"
  for dir in "${EF_BENCH_BUILD_A:-}" "${EF_BENCH_BUILD_B:-}"; do
    [ -x "$dir/easyfaas-controller" ] || {
      echo "bench: builds needs EF_BENCH_BUILD_A and EF_BENCH_BUILD_B, two build directories" >&2
      exit 2
    }
  done
  ;;
*)
  echo "usage: bench/ab.sh sched|handover|builds [seconds per run] [rounds]" >&2
  exit 2
  ;;
esac
bench=$EF_SOURCE_DIR/bench
source "$EF_SOURCE_DIR/tests/integration/lib.sh"
require_root
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
# The CPUs this script may use, restored after each pinned series.
cpus=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/$$/status)

# variant_pod_start VALUE [FUNCLET_ARGS]: a pod with the experiment's setting at VALUE.
variant_pod_start() {
  case $experiment in
  sched)
    EF_CONTROLLER_ARGS="--sched-policy $1" \
      EF_FUNCLET_ARGS="${2:-} --container-sched-policy $1" pod_start
    ;;
  handover) EF_CONTROLLER_ARGS="--runtime-handover $1" EF_FUNCLET_ARGS="${2:-}" pod_start ;;
  builds)
    local dir=$EF_BENCH_BUILD_A
    [ "$1" = b ] && dir=$EF_BENCH_BUILD_B
    EF_BUILD_DIR=$dir EF_FUNCLET_ARGS="${2:-}" pod_start
    ;;
  esac
}

# measure CONNS VALUE: one pod with VALUE; prints "conns value req/s p50 p99" per run.
measure() {
  local conns=$1 value=$2 pin="" threads=2 out
  out=$(mktemp /tmp/ef-bench-ab.XXXXXX)
  if [ "$conns" = 1 ]; then
    taskset -cp 0 $$ >/dev/null
    pin="taskset -c 0"
    threads=1
  fi
  variant_pod_start "$value" "--max-containers 96"
  [ "$(create_function noop python3.11 app.handler "$bench/functions/noop" ',"Timeout":30')" = 201 ] ||
    fail "create noop: $(cat "$EF_DATA/create-noop.json")"
  local url=$EF_BASE/2015-03-31/functions/noop/invocations
  $pin wrk -t$threads -c"$conns" -d5s -s "$bench/post.lua" "$url" >/dev/null
  sleep 3 # the warm-up's cold starts settle
  for _ in 1 2; do
    $pin wrk -t$threads -c"$conns" -d"${duration}s" --latency -s "$bench/post.lua" "$url" >"$out"
    awk -v c="$conns" -v p="$value" '
      function ms(v) { if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0; return v * 1000 }
      /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
      /Non-2xx/ { bad = $NF }
      END { printf "%-5s %-6s %9.0f %8.3f %8.3f%s\n", c, p, rps, p50, p99, bad ? "  non-2xx " bad : "" }' "$out"
  done
  pod_remove
  rm -f "$out"
  taskset -cp "$cpus" $$ >/dev/null
}

# measure_cold VALUE: one pod with VALUE; prints "cold value p50 p90" of 10 cold starts (ms).
measure_cold() {
  local value=$1 i
  variant_pod_start "$value"
  for i in $(seq 10); do
    [ "$(create_function "cold$i" python3.11 app.handler "$bench/functions/noop")" = 201 ] ||
      fail "create cold$i: $(cat "$EF_DATA/create-cold$i.json")"
    sleep 0.5 # funclet refills its pool
    curl -fsS -o /dev/null -w '%{time_total}\n' -X POST "$EF_BASE/2015-03-31/functions/cold$i/invocations" -d '{}' ||
      fail "the first invocation of cold$i failed"
  done >"$EF_DATA/cold.times"
  # p50: the mean of the middle two of 10; p90: the 9th.
  sort -n "$EF_DATA/cold.times" | awk -v p="$value" '{ v[NR] = $1 * 1000 }
    END { printf "cold  %-6s %9s %8.3f %8.3f\n", p, "-", (v[5] + v[6]) / 2, v[9] }'
  pod_remove
}

echo "# machine: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $experiment: $variants"
echo "# conns value   req/s   p50(ms)  p99(ms)    (cold: p50 and p90 of the first invocations)"
# Rounds alternate which value goes first (A, B; B, A; ...), so that neither always follows the
# other's teardown.
for series in ${EF_BENCH_SERIES:-1 64 cold}; do
  for round in $(seq "$rounds"); do
    order=$variants
    [ $((round % 2)) = 0 ] && order=$(tr ' ' '\n' <<<"$variants" | tac | tr '\n' ' ')
    for value in $order; do
      if [ "$series" = cold ]; then
        measure_cold "$value"
      else
        measure "$series" "$value"
      fi
    done
  done
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
