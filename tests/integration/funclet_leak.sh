#!/usr/bin/env bash
# Leak test: many cycles of container.create -> container.warmup -> container.reset ->
# container.destroy (every second one with network "bridge"), after which funclet's open fds,
# its mounts, the containers' cgroups, its child processes, the veths on its bridge (and any
# container veth on the host) and the container directories are back to their baseline,
# and its memory has not grown with the number of cycles. EF_LEAK_CYCLES (default 500) sets
# the count. Needs root; exits 77 (skipped) without it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/funclet_lib.sh"

require_root "namespaces, cgroups, mounts, network"
require_built easyfaas-funclet easyfaas-runner ef-rpc-call

CYCLES=${EF_LEAK_CYCLES:-500}
DATA=$(mktemp -d /tmp/ef-leak.XXXXXX)
PARENT="ef-leak-$$"
SOCK="$DATA/run/funclet.sock"
BRIDGE="efl$$"
NET3=$(($$ % 250))
CIDR="100.65.$NET3.0/24"
FUNCLET_PID=
CLIENT="$EF_SOURCE_DIR/tests/integration/funclet_client.py"

cleanup() {
  local rc=$?
  kill_funclet
  if [ $rc -ne 0 ]; then
    echo "=== funclet.log" >&2
    grep -v DEBUG "$DATA/funclet.log" | tail -n 40 >&2 || true
  fi
  ip link del "$BRIDGE" 2>/dev/null || true
  remove_cgroups "$PARENT"
  remove_data "$DATA"
  exit $rc
}
trap cleanup EXIT

"$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$DATA/runtime" >/dev/null
CODE="$DATA/code/extracted/fn"
mkdir -p "$CODE"
echo 'def handler(event, context): return event' >"$CODE/app.py"
grep -q "100.65.$NET3." <<<"$(ip -o route)" && fail "$CIDR is in use on this host"

"$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" --pool-size 0 \
  --userns-base "$EF_USERNS_BASE" --bridge-name "$BRIDGE" --bridge-cidr "$CIDR" --log-level info 2>"$DATA/funclet.log" &
FUNCLET_PID=$!
wait_funclet "$SOCK" "$DATA/funclet.log"

# What funclet holds: one line per resource, "name count". Only what is funclet's own is
# counted (mounts below the data dir, veths named after containers), as other programs on the
# host may mount and create interfaces meanwhile.
snapshot() {
  local own cg=0 c
  echo "fds $(ls "/proc/$FUNCLET_PID/fd" | wc -l)"
  echo "mounts $(grep -c " $DATA/" "/proc/$FUNCLET_PID/mountinfo" || true)"
  for c in memory pids cpu freezer; do
    own=$(awk -F: -v c="$c" '$2 == c { print $3 }' "/proc/$FUNCLET_PID/cgroup")
    [ -d "/sys/fs/cgroup/$c${own%/}/$PARENT" ] || continue
    cg=$((cg + $(find "/sys/fs/cgroup/$c${own%/}/$PARENT" -mindepth 1 -type d | wc -l)))
  done
  echo "cgroups $cg"
  echo "children $(cat /proc/"$FUNCLET_PID"/task/*/children | wc -w)"
  echo "veths $(ip -o link show master "$BRIDGE" 2>/dev/null | wc -l)"
  echo "container_links $(ip -o link | grep -Ec '^[0-9]+: ve[0-9a-f]{12}[@:]' || true)"
  echo "containers $(ls "$DATA/run/containers" | wc -l)"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$FUNCLET_PID/status"; }

note "warming up (the bridge is created at the first bridge warmup)"
/usr/bin/python3 "$CLIENT" cycles "$SOCK" 10 "$CODE" 2 >/dev/null
before=$(settled snapshot)
rss_before=$(rss_kb)
echo "$before" | tr '\n' ' ' >&2
echo "rss_kb $rss_before" >&2

note "$CYCLES cycles of create -> warmup -> reset -> destroy (every second with a bridge)"
/usr/bin/python3 "$CLIENT" cycles "$SOCK" "$CYCLES" "$CODE" 2 >"$DATA/cycles.out" ||
  fail "a cycle failed"
cat "$DATA/cycles.out" >&2
after=$(settled snapshot)
rss_after=$(rss_kb)
echo "$after" | tr '\n' ' ' >&2
echo "rss_kb $rss_after" >&2

[ "$before" = "$after" ] || fail "resources differ from the baseline: before: $(echo $before), after: $(echo $after)"
[ "$(echo "$after" | awk '$1 == "veths" || $1 == "children" || $1 == "containers" { s += $2 } END { print s }')" = 0 ] ||
  fail "containers, processes or veths remain: $(echo $after)"
# The allocator keeps some memory; a leak grows with the cycles. 1 KiB per cycle is allowed.
growth=$((rss_after - rss_before))
[ "$growth" -le "$CYCLES" ] || fail "funclet's memory grew by $growth KiB over $CYCLES cycles"
[ "$(grep -c ' destroyed' "$DATA/funclet.log")" -ge "$CYCLES" ] || fail "fewer destroys logged than cycles"
! grep -q ' ERROR ' "$DATA/funclet.log" || fail "funclet logged errors: $(grep ' ERROR ' "$DATA/funclet.log" | head -3)"

kill -TERM "$FUNCLET_PID"
wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
FUNCLET_PID=
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "the bridge survived funclet's shutdown"
leftovers=$(find /sys/fs/cgroup -type d -name "$PARENT" 2>/dev/null || true)
[ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
! grep -q " $DATA" /proc/self/mountinfo || fail "mounts left behind"
echo "PASS: funclet_leak"
