#!/usr/bin/env bash
# funclet's start-up checks, and what two funclets on one host must never share: a second
# funclet on a running one's data dir refuses before it touches anything (its containers,
# mounts and veths stay), one whose host id range overlaps a running one's refuses and names a
# free --userns-base, and a bridge of the same name is deleted or taken over only when it is
# the funclet's own or a dead one's (its alias names the data dir). Flags that cannot work
# (--cgroup-parent naming a file, a too long --socket, a stray argument) are refused at once
# with an error that names them. Needs root; exits 77 (skipped) without it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/funclet_lib.sh"

require_root "namespaces, cgroups, mounts, network"
require_built easyfaas-funclet easyfaas-runner ef-rpc-call

DATA=$(realpath "$(mktemp -d /tmp/ef-start.XXXXXX)")
DATA2=$(realpath "$(mktemp -d /tmp/ef-start2.XXXXXX)")
PARENT="ef-start-$$"
PARENT2="ef-start2-$$"
SOCK="$DATA/run/funclet.sock"
SOCK2="$DATA2/run/funclet.sock"
BRIDGE="efs$$"
NET3=$((($$ + 7) % 250))
CIDR="100.66.$NET3.0/24"
CIDR2="100.67.$NET3.0/24"
# 4 containers: each funclet's range is 4 * 65536 ids from its base.
SPAN=262144
FUNCLET_PID=
FUNCLET2_PID=
DATA3=

cleanup() {
  local rc=$?
  kill_funclet
  if [ -n "$FUNCLET2_PID" ]; then
    kill -TERM "$FUNCLET2_PID" 2>/dev/null || true
    wait "$FUNCLET2_PID" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ]; then
    show_funclet_log 30
    echo "=== second funclet" >&2
    tail -n 30 "$DATA2/funclet.log" >&2 || true
  fi
  ip link del "$BRIDGE" 2>/dev/null || true
  remove_cgroups "$PARENT"
  remove_cgroups "$PARENT2"
  remove_data "$DATA"
  remove_data "$DATA2"
  [ -z "$DATA3" ] || remove_data "$DATA3"
  exit $rc
}
trap cleanup EXIT

call() { "$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 "$SOCK" "$@"; }
call2() { "$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 "$SOCK2" "$@"; }
identity='{"name":"fn","version":"1","code_sha256":"0000000000000000000000000000000000000000000000000000000000000000","config_hash":"c0ffee"}'
acquire_bridge() { # CALL CODE_DIR: a warm container with network bridge
  "$1" container.acquire "{\"code_dir\":\"$2\",\"memory_mb\":64,\"network\":\"bridge\",\"identity\":$identity}"
}
alias_of() { cat "/sys/class/net/$1/ifalias" 2>/dev/null; }
ports_of() { ip -o link show master "$1" | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort; }
# snapshot: what must not change while another funclet tries its luck: the containers with
# their pids, the containers root mount, the bridge's ports and mark.
snapshot() {
  call container.list | json 'sorted((c["id"], c["pid"], c["state"]) for c in j["containers"])'
  grep -c " $DATA/run/containers " /proc/self/mountinfo || true
  ports_of "$BRIDGE"
  alias_of "$BRIDGE"
}
wait_pool() { # until the first funclet's pool is full again (2 spares, none being made)
  for _ in $(seq 200); do
    [ "$(call node.info | json 'j["pool"]["cold"], j["pool"]["creating"]')" = "(2, 0)" ] && return 0
    sleep 0.05
  done
  fail "the pool did not refill: $(call node.info)"
}
# start FUNCLET_VAR SOCKET DATA PARENT FLAGS...: starts a funclet in the background.
start() {
  local var=$1 sock=$2 data=$3 parent=$4 pid
  shift 4
  "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$data" --cgroup-parent "$parent" --userns on \
    --max-containers 4 --tmp-size 16M --bridge-name "$BRIDGE" --log-level debug "$@" \
    2>>"$data/funclet.log" &
  pid=$!
  printf -v "$var" '%s' "$pid"
  for _ in $(seq 200); do
    "$EF_BUILD_DIR/ef-rpc-call" --timeout 1000 "$sock" node.info >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || fail "funclet on $data died at start: $(tail -n 3 "$data/funclet.log")"
    sleep 0.05
  done
  fail "funclet on $data does not answer"
}
# refused EXPECTED_STATUS FLAGS...: runs a funclet that must exit at once with that status;
# prints its output.
refused() {
  local want=$1 out rc=0
  shift
  out=$(timeout 20 "$EF_BUILD_DIR/easyfaas-funclet" --log-level debug "$@" 2>&1) || rc=$?
  [ "$rc" = "$want" ] || fail "funclet $* exited with status $rc, want $want: $out"
  echo "$out"
}

note "installing the runner and a function"
for d in "$DATA" "$DATA2"; do
  "$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$d/runtime" >/dev/null
  mkdir -p "$d/code/extracted/fn"
  echo 'def handler(event, context): return event' >"$d/code/extracted/fn/app.py"
done
grep -q -e "100.66.$NET3." -e "100.67.$NET3." <<<"$(ip -o route)" && fail "$CIDR or $CIDR2 is in use"
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "bridge $BRIDGE exists before the test"

note "the first funclet: two spares and a warm container on the bridge"
start FUNCLET_PID "$SOCK" "$DATA" "$PARENT" --pool-size 2 --userns-base "$EF_USERNS_BASE" \
  --bridge-cidr "$CIDR"
warm=$(acquire_bridge call "$DATA/code/extracted/fn")
WARM=$(echo "$warm" | json 'j["id"]')
wait_pool
[ "$(alias_of "$BRIDGE")" = "easyfaas:$DATA" ] || fail "the bridge's alias is '$(alias_of "$BRIDGE")'"
[ "$(ports_of "$BRIDGE")" = "ve${WARM#c}" ] || fail "bridge ports: $(ports_of "$BRIDGE")"
before=$(snapshot)
[ "$(call container.list | json 'len(j["containers"])')" = 3 ] || fail "want 3 containers: $before"

note "a second funclet on the same data dir refuses before it touches anything"
out=$(refused 1 --data-dir "$DATA" --cgroup-parent "$PARENT" --userns-base 4000000000 \
  --bridge-name "$BRIDGE" --bridge-cidr "$CIDR")
grep -q "another funclet (pid $FUNCLET_PID) runs on data dir $DATA" <<<"$out" ||
  fail "unclear refusal: $out"
! grep -qi -e "orphan" -e "removed" -e "network cleanup" <<<"$out" || fail "it recycled: $out"
[ "$(snapshot)" = "$before" ] || fail "the first funclet's state changed: $(snapshot), was $before"
for pid in $(call container.list | json '" ".join(str(c["pid"]) for c in j["containers"])'); do
  kill -0 "$pid" || fail "runner $pid is gone"
done
[ -S "$SOCK" ] || fail "the first funclet's socket is gone"
res=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn\",\"memory_mb\":64,\"pids_max\":64}")
NEW=$(echo "$res" | json 'j["id"]')
call container.destroy "{\"id\":\"$NEW\"}" >/dev/null
# The create took a spare; the replacement is part of the state from here on.
wait_pool
before=$(snapshot)

note "a funclet whose host ids overlap the first one's refuses and names a free base"
out=$(refused 1 --data-dir "$DATA2" --cgroup-parent "$PARENT2" --userns on --max-containers 4 \
  --userns-base $((EF_USERNS_BASE + 65536)) --bridge-name "$BRIDGE" --bridge-cidr "$CIDR2")
grep -q "overlap those of another funclet on this host (pid $FUNCLET_PID, ids $EF_USERNS_BASE-" <<<"$out" ||
  fail "unclear refusal: $out"
grep -q "pick another --userns-base (e.g. $((EF_USERNS_BASE + SPAN)))" <<<"$out" || fail "no free base named: $out"
[ "$(snapshot)" = "$before" ] || fail "the first funclet's state changed: $(snapshot), was $before"
# Without a user namespace no host ids are claimed.
"$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA2" --cgroup-parent "$PARENT2" --userns off \
  --userns-base "$EF_USERNS_BASE" --pool-size 0 2>>"$DATA2/funclet.log" &
FUNCLET2_PID=$!
for _ in $(seq 100); do
  "$EF_BUILD_DIR/ef-rpc-call" --timeout 1000 "$SOCK2" node.info >/dev/null 2>&1 && break
  kill -0 "$FUNCLET2_PID" 2>/dev/null || fail "--userns off on the same base did not start"
  sleep 0.05
done
kill -TERM "$FUNCLET2_PID"
wait "$FUNCLET2_PID" || fail "the second funclet exited with status $?"
FUNCLET2_PID=

note "a funclet with the same --bridge-name leaves the first one's bridge alone"
start FUNCLET2_PID "$SOCK2" "$DATA2" "$PARENT2" --pool-size 1 \
  --userns-base $((EF_USERNS_BASE + SPAN)) --bridge-cidr "$CIDR2"
[ "$(snapshot)" = "$before" ] || fail "the first funclet's state changed: $(snapshot), was $before"
grep -q "bridge $BRIDGE belongs to the funclet (pid $FUNCLET_PID) of data dir $DATA" "$DATA2/funclet.log" ||
  fail "no warning at start"
out=$(acquire_bridge call2 "$DATA2/code/extracted/fn" 2>&1) && fail "a bridge warmup on a taken bridge: $out"
grep -q "bridge $BRIDGE belongs to the funclet (pid $FUNCLET_PID) of data dir $DATA: give this funclet another --bridge-name" <<<"$out" ||
  fail "unclear error: $out"
[ "$(snapshot)" = "$before" ] || fail "the first funclet's state changed: $(snapshot), was $before"
! grep -q "100.67.$NET3." <<<"$(ip -o addr show dev "$BRIDGE")" || fail "the second CIDR is on the bridge"
kill -TERM "$FUNCLET2_PID"
wait "$FUNCLET2_PID" || fail "the second funclet exited with status $?"
FUNCLET2_PID=
[ "$(snapshot)" = "$before" ] || fail "the second funclet's stop changed the first: $(snapshot)"

note "the bridge of a funclet that is gone is taken over"
kill -KILL "$FUNCLET_PID"
wait "$FUNCLET_PID" 2>/dev/null || true
FUNCLET_PID=
[ "$(alias_of "$BRIDGE")" = "easyfaas:$DATA" ] || fail "the killed funclet's bridge is gone already"
start FUNCLET2_PID "$SOCK2" "$DATA2" "$PARENT2" --pool-size 0 \
  --userns-base $((EF_USERNS_BASE + SPAN)) --bridge-cidr "$CIDR2"
grep -q "bridge $BRIDGE belongs to data dir $DATA, whose funclet is not running" "$DATA2/funclet.log" ||
  fail "no note of the stale bridge at start"
res=$(acquire_bridge call2 "$DATA2/code/extracted/fn")
[ "$(echo "$res" | json 'j["gateway"]')" = "100.67.$NET3.1" ] || fail "warmup: $res"
[ "$(alias_of "$BRIDGE")" = "easyfaas:$DATA2" ] || fail "not taken over: '$(alias_of "$BRIDGE")'"
kill -TERM "$FUNCLET2_PID"
wait "$FUNCLET2_PID" || fail "the second funclet exited with status $?"
FUNCLET2_PID=
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "the bridge survived its owner's stop"

note "a bridge not made by funclet is left alone"
ip link add "$BRIDGE" type bridge
start FUNCLET_PID "$SOCK" "$DATA" "$PARENT" --pool-size 0 --userns-base "$EF_USERNS_BASE" \
  --bridge-cidr "$CIDR"
grep -q "removed orphan container $WARM" "$DATA/funclet.log" || fail "the killed funclet's containers were not recycled"
out=$(acquire_bridge call "$DATA/code/extracted/fn" 2>&1) && fail "a warmup took a foreign bridge: $out"
grep -q "bridge $BRIDGE exists and was not made by funclet" <<<"$out" || fail "unclear error: $out"
stop_funclet
ip link show "$BRIDGE" >/dev/null 2>&1 || fail "funclet deleted a bridge it did not make"
ip link del "$BRIDGE"

note "--userns-base auto: each funclet takes the lowest range that no other funclet holds"
# host_ids LOG: the first and last host id of the range the funclet of LOG announced.
host_ids() { sed -n 's/.*user namespaces on, host ids \([0-9]*\)-\([0-9]*\),.*/\1 \2/p' "$1" | tail -n 1; }
start FUNCLET_PID "$SOCK" "$DATA" "$PARENT" --pool-size 0 --userns-base auto --bridge-cidr "$CIDR"
read -r A_FIRST A_LAST <<<"$(host_ids "$DATA/funclet.log")"
[ -n "$A_FIRST" ] && [ "$A_FIRST" -ge 1000000 ] && [ $((A_LAST - A_FIRST + 1)) = "$SPAN" ] ||
  fail "the first auto range is '$A_FIRST-$A_LAST': $(grep 'host ids' "$DATA/funclet.log")"
start FUNCLET2_PID "$SOCK2" "$DATA2" "$PARENT2" --pool-size 0 --userns-base auto --bridge-cidr "$CIDR2"
read -r B_FIRST B_LAST <<<"$(host_ids "$DATA2/funclet.log")"
# Every id below the first range is held by others (it took the lowest free one), so the
# second range lies above it.
[ -n "$B_FIRST" ] && [ "$B_FIRST" -gt "$A_LAST" ] && [ $((B_LAST - B_FIRST + 1)) = "$SPAN" ] ||
  fail "the second auto range $B_FIRST-$B_LAST is not past the first one's $A_FIRST-$A_LAST"
res=$(call2 container.create '{}')
B_PID=$(echo "$res" | json 'j["pid"]')
[ "$(awk '{ print $1, $2, $3 }' "/proc/$B_PID/uid_map")" = "0 $B_FIRST 65536" ] ||
  fail "the container's uid_map is $(cat "/proc/$B_PID/uid_map"), want 0 $B_FIRST 65536"
# An explicit base inside an auto range is refused, as any overlap.
DATA3=$(mktemp -d /tmp/ef-start3.XXXXXX)
"$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$DATA3/runtime" >/dev/null
out=$(refused 1 --data-dir "$DATA3" --userns on --max-containers 4 --userns-base "$B_FIRST" \
  --cgroup-parent "$PARENT2")
remove_data "$DATA3"
DATA3=
grep -q "overlap those of another funclet on this host (pid $FUNCLET2_PID" <<<"$out" ||
  fail "unclear refusal of an overlap with an auto range: $out"
kill -TERM "$FUNCLET2_PID"
wait "$FUNCLET2_PID" || fail "the second funclet exited with status $?"
FUNCLET2_PID=
stop_funclet
out=$(refused 1 --data-dir "$DATA" --userns-base 12ab)
grep -q -- "--userns-base must be auto or a host id from 1 to 4294967294, not '12ab'" <<<"$out" ||
  fail "unclear refusal of --userns-base 12ab: $out"

note "flags that cannot work are refused before anything is made"
out=$(refused 1 --data-dir "$DATA" --cgroup-parent cgroup.procs --userns-base "$EF_USERNS_BASE")
grep -qF -- "--cgroup-parent 'cgroup.procs' cannot hold the containers' cgroups" <<<"$out" ||
  fail "unclear refusal: $out"
long="$DATA2/nonexistent/$(printf 's%.0s' $(seq 100))"
out=$(refused 1 --data-dir "$DATA2" --socket "$long")
grep -q -- "--socket .* is 1[0-9][0-9] bytes long; a Unix socket path has at most 107" <<<"$out" ||
  fail "unclear refusal: $out"
[ ! -e "$DATA2/nonexistent" ] || fail "the socket's directory was created"
! grep -q "network cleanup" <<<"$out" || fail "stray log: $out"
out=$(refused 2 --data-dir "$DATA" stray-arg)
grep -q "unexpected argument 'stray-arg'" <<<"$out" || fail "the argument is not named: $out"

note "nothing is left"
leftovers=$(find /sys/fs/cgroup -type d \( -name "$PARENT" -o -name "$PARENT2" \) 2>/dev/null || true)
[ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
! grep -q -e " $DATA/" -e " $DATA2/" /proc/self/mountinfo || fail "mounts left behind"
[ -z "$(find "$DATA/run/containers" "$DATA2/run/containers" -mindepth 1)" ] ||
  fail "container directories left"
echo "PASS: funclet_start"
