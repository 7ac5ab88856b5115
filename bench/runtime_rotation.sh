#!/usr/bin/env bash
# The bundled Python runtime alone, N copies taking turns on the CPUs (docs/performance.md,
# "Where the time goes"): runtime_rotation.c is the Runtime API for all of them and answers at
# once, so what is measured is the runtime's own cost per warm invocation of the no-op function,
# and how it grows with the number of runtime processes in rotation, without the rest of the pod.
# Needs a C compiler; no root.
#   bench/runtime_rotation.sh [seconds per run, default 5] [rounds, default 3] [N ..., default 2 64]
# Environment:
#   EF_BENCH_BOOTSTRAP  another Python runtime bootstrap, measured alternately with the bundled
#                       one (A/B runs)
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-5}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(2 64)
bootstraps=("$source_dir/runtimes/python/bootstrap")
if [ -n "${EF_BENCH_BOOTSTRAP:-}" ]; then
  [ -x "$EF_BENCH_BOOTSTRAP" ] || { echo "bench: EF_BENCH_BOOTSTRAP=$EF_BENCH_BOOTSTRAP is not executable" >&2; exit 1; }
  bootstraps+=("$EF_BENCH_BOOTSTRAP")
fi
work=$(mktemp -d /tmp/ef-rotation.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/runtime_rotation" "$source_dir/bench/runtime_rotation.c"

echo "# $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ), ${seconds}s runs, $rounds rounds"
for round in $(seq "$rounds"); do
  for n in "${counts[@]}"; do
    for bootstrap in "${bootstraps[@]}"; do
      printf 'round %s  %-60s ' "$round" "$bootstrap"
      "$work/runtime_rotation" "$n" "$seconds" "$bootstrap" "$source_dir/bench/functions/noop" \
        app.handler
    done
  done
done
