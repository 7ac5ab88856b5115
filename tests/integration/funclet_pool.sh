#!/usr/bin/env bash
# funclet's warm pool and container lifecycle, driven over its socket: spares created at start
# and topped up, container.acquire and container.warmup mounting code into running containers,
# container.reset leaving nothing of the function behind (files in /tmp and /dev/shm, background
# processes, the code mount, limits, the veth), -32011 for requests that overlap a reset,
# -32012 when the node's memory capacity is used up, the network modes (none, bridge with
# isolated ports, host), and recycling of what a killed funclet left. The user code is
# tests/probe/ef-probe as a `provided` runtime. Needs root; exits 77 (skipped) without it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/funclet_lib.sh"

require_root "namespaces, cgroups, mounts, network"
require_built easyfaas-funclet easyfaas-runner ef-rpc-call ef-probe

DATA=$(mktemp -d /tmp/ef-pool.XXXXXX)
PARENT="ef-pool-$$"
SOCK="$DATA/run/funclet.sock"
BRIDGE="efp$$"
NET3=$(($$ % 250))
CIDR="100.64.$NET3.0/24"
GW="100.64.$NET3.1"
FUNCLET_PID=
BG_PIDS=()
CLIENT="$EF_SOURCE_DIR/tests/integration/funclet_client.py"

cleanup() {
  local rc=$?
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  kill_funclet
  [ $rc -eq 0 ] || show_funclet_log 60
  ip link del "$BRIDGE" 2>/dev/null || true
  { grep " $DATA/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  remove_cgroups "$PARENT"
  remove_data "$DATA"
  exit $rc
}
trap cleanup EXIT

call() { "$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 "$SOCK" "$@"; }
cgroup_dir() { # CONTROLLER ID: the host directory of a container's cgroup
  local own
  own=$(awk -F: -v c="$1" '$2 == c { print $3 }' "/proc/$FUNCLET_PID/cgroup")
  echo "/sys/fs/cgroup/$1${own%/}/$PARENT/$2"
}
inside() { nsenter -t "$1" -m -u -i -n -p /bin/sh -c "$2"; }
info() { call node.info | json "$1"; }
field() { # ID EXPR: an expression on the container.list entry `c` of ID
  call container.list | json "[($2) for c in j['containers'] if c['id'] == '$1'][0]"
}

start_funclet() {
  "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" \
    --bridge-name "$BRIDGE" --bridge-cidr "$CIDR" --userns-base "$EF_USERNS_BASE" --tmp-size 64M \
    --log-level debug "$@" \
    2>>"$DATA/funclet.log" &
  FUNCLET_PID=$!
  wait_funclet "$SOCK" "$DATA/funclet.log"
}

wait_pool() { # N: until N spares are ready and none is being created
  for _ in $(seq 200); do
    [ "$(info 'j["pool"]["cold"], j["pool"]["creating"]')" = "($1, 0)" ] && return 0
    sleep 0.05
  done
  fail "the pool did not reach $1 spares: $(call node.info)"
}

identity() { # NAME
  printf '{"name":"%s","version":"1","code_sha256":"%064d","config_hash":"c0ffee"}' "$1" 0
}
acquire() { # CODE_DIR MEMORY_MB NETWORK: prints the answer
  call container.acquire "{\"code_dir\":\"$1\",\"memory_mb\":$2,\"network\":\"$3\",\"identity\":$(identity fn)}"
}

N=0
invoke() { # RUNNER_SOCKET EVENT: runs one probe and prints its output
  N=$((N + 1))
  local params
  params=$(EVENT="$2" ID="r$N" /usr/bin/python3 -c 'import json,os,time
print(json.dumps({"request_id": os.environ["ID"], "payload": os.environ["EVENT"],
                  "deadline_ms": int(time.time() * 1000) + 30000}))')
  "$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 "$1" invoke "$params" | json 'j["payload"]'
}
START_PARAMS='{"function_name":"probe","handler":"probe","runtime":"provided.al2023","memory_mb":128,"timeout_s":30}'

note "installing the runner and the probe"
"$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$DATA/runtime" >/dev/null
PROBE="$DATA/code/extracted/probe"
mkdir -p "$PROBE" "$DATA/code/extracted/other"
install -m 0755 "$EF_BUILD_DIR/ef-probe" "$PROBE/ef-probe"
printf '#!/bin/sh\nexec /var/task/ef-probe serve\n' >"$PROBE/bootstrap"
# A process that outlives its invocation, in a session of its own (not the runtime's group).
printf '#!/bin/sh\nsetsid -f sleep 1000 </dev/null >/dev/null 2>&1\n' >"$PROBE/daemon"
chmod 0755 "$PROBE/bootstrap" "$PROBE/daemon"
echo 'the other function' >"$DATA/code/extracted/other/README"
grep -q "100.64.$NET3." <<<"$(ip -o route)" && fail "$CIDR is in use on this host"

note "spares are created at start"
start_funclet --pool-size 3
wait_pool 3
list=$(call container.list)
[ "$(echo "$list" | json 'sorted((c["state"], c["pooled"], c["memory_mb"], c["network"]) for c in j["containers"])')" = \
  "[('cold', True, 32, 'none'), ('cold', True, 32, 'none'), ('cold', True, 32, 'none')]" ] ||
  fail "spares: $list"
SPARES=$(echo "$list" | json '" ".join(c["id"] for c in j["containers"])')
SPARE=${SPARES%% *}
SPARE_PID=$(field "$SPARE" 'c["pid"]')
[ "$(cat "$(cgroup_dir memory "$SPARE")/memory.limit_in_bytes")" = $((32 << 20)) ] || fail "a spare's memory limit is not 32M"
[ "$(cat "$(cgroup_dir pids "$SPARE")/pids.max")" = 64 ] || fail "a spare's pids.max is not 64"
[ -z "$(inside "$SPARE_PID" 'ls -A /var/task')" ] || fail "a spare has code in /var/task"
inside "$SPARE_PID" 'touch /var/task/x' 2>/dev/null && fail "a spare's /var/task is writable"
[ "$(info 'j["allocated_mb"]')" = 96 ] || fail "node.info: $(call node.info)"

note "acquire warms a spare up at once, and the pool tops up"
res=$(acquire "$PROBE" 128 none)
ID=$(echo "$res" | json 'j["id"]')
PID=$(echo "$res" | json 'j["pid"]')
RSOCK=$(echo "$res" | json 'j["runner_socket"]')
[[ " $SPARES " == *" $ID "* ]] || fail "acquire did not take a spare: $res"
[ "$(echo "$res" | json 'j["state"]')" = warm ] || fail "acquire: $res"
wait_pool 3
[ "$(info 'j["containers"]')" = 4 ] || fail "node.info after the top-up: $(call node.info)"
[ "$(field "$ID" 'c["pooled"], c["identity"]["name"], c["memory_mb"]')" = "(False, 'fn', 128)" ] ||
  fail "container.list: $(call container.list)"
[ "$(cat "$(cgroup_dir memory "$ID")/memory.limit_in_bytes")" = $((128 << 20)) ] || fail "memory limit after warmup"
[ "$(cat "$(cgroup_dir pids "$ID")/pids.max")" = 1024 ] || fail "pids.max after warmup"
inside "$PID" 'test -x /var/task/ef-probe' || fail "the code is not at /var/task"
inside "$PID" 'touch /var/task/x' 2>/dev/null && fail "/var/task is writable"
grep -q " $DATA/run/containers/$ID/mnt/task " /proc/self/mountinfo || fail "no host-side code mount"
grep -q ' ro,' <<<"$(grep " $DATA/run/containers/$ID/mnt/task " /proc/self/mountinfo)" || fail "the code mount is not read-only"

note "a spare whose runner dies is replaced"
OTHER=$(call container.list | json '[c["id"] for c in j["containers"] if c["pooled"]][0]')
kill -KILL "$(field "$OTHER" 'c["pid"]')"
for _ in $(seq 100); do
  grep -q "$OTHER" <<<"$(call container.list)" || break
  sleep 0.05
done
grep -q "$OTHER" <<<"$(call container.list)" && fail "the dead spare $OTHER is still listed"
wait_pool 3

note "the function leaves files, a background process and shared memory"
call_rt() { "$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 "$RSOCK" "$@"; }
call_rt runtime.start "$START_PARAMS" >/dev/null || fail "runtime.start failed"
out=$(invoke "$RSOCK" 'touch /tmp/left-behind')
grep -qx 'touch: OK' <<<"$out" || fail "touch /tmp: $out"
out=$(invoke "$RSOCK" 'touch /dev/shm/left-behind')
grep -qx 'touch: OK' <<<"$out" || fail "touch /dev/shm: $out"
# More than the base memory limit, in pages that cannot be reclaimed until /tmp goes.
out=$(invoke "$RSOCK" 'touch /tmp/big 48')
grep -qx 'touch: OK' <<<"$out" || fail "touch /tmp/big: $out"
[ "$(cat "$(cgroup_dir memory "$ID")/memory.usage_in_bytes")" -gt $((48 << 20)) ] ||
  fail "the 48 MB in /tmp are not charged to the container"
out=$(invoke "$RSOCK" 'exec /var/task/daemon')
grep -qx 'exit=0' <<<"$out" || fail "starting a daemon: $out"
PROCS=$(cgroup_dir pids "$ID")/cgroup.procs
for _ in $(seq 50); do
  [ "$(wc -l <"$PROCS")" -ge 3 ] && break
  sleep 0.05
done
[ "$(wc -l <"$PROCS")" -ge 3 ] || fail "no background process: $(cat "$PROCS")"
[ "$(inside "$PID" 'ls -A /tmp /dev/shm')" = "$(printf '/dev/shm:\nleft-behind\n\n/tmp:\nbig\nleft-behind')" ] ||
  fail "the files are not there: $(inside "$PID" 'ls -A /tmp /dev/shm')"

note "reset leaves nothing of the function behind"
before_reset=$(cat "$PROCS")
[ "$(call container.reset "{\"id\":\"$ID\"}")" = '{"state":"cold","pooled":false}' ] || fail "reset"
# Only the runner, and the Python runtime it starts ahead once the reset is complete (funclet
# tells it with SIGUSR1): a new child of the runner, none of the processes from before.
for p in $(cat "$PROCS"); do
  [ "$p" = "$PID" ] && continue
  if grep -qx "$p" <<<"$before_reset" || [ "$(awk '{print $4}' "/proc/$p/stat")" != "$PID" ] ||
    ! tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'python/bootstrap'; then
    fail "process $p survived the reset: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
  fi
done
# Nor an unreaped child (a zombie has an empty command line), only that runtime.
for p in $(cat "/proc/$PID/task/$PID/children" 2>/dev/null); do
  if grep -qx "$p" <<<"$before_reset" || ! tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'python/bootstrap'; then
    fail "the runner has an unreaped or surviving child $p"
  fi
done
[ -z "$(inside "$PID" 'ls -A /tmp')" ] || fail "/tmp is not empty: $(inside "$PID" 'ls -A /tmp')"
[ -z "$(inside "$PID" 'ls -A /dev/shm')" ] || fail "/dev/shm is not empty"
[ -z "$(inside "$PID" 'ls -A /var/task')" ] || fail "/var/task still holds the code"
inside "$PID" 'touch /tmp/fresh && rm /tmp/fresh' || fail "/tmp is not writable after the reset"
! grep -q " $DATA/run/containers/$ID/mnt/task " /proc/self/mountinfo || fail "the code mount is left on the host"
[ "$(cat "$(cgroup_dir memory "$ID")/memory.limit_in_bytes")" = $((32 << 20)) ] || fail "memory limit after reset"
[ "$(cat "$(cgroup_dir memory "$ID")/memory.usage_in_bytes")" -lt $((32 << 20)) ] || fail "memory usage after reset"
[ "$(cat "$(cgroup_dir pids "$ID")/pids.max")" = 64 ] || fail "pids.max after reset"
[ "$(field "$ID" '"identity" in c, "code_dir" in c, c["state"], c["memory_mb"]')" = "(False, False, 'cold', 32)" ] ||
  fail "container.list after reset: $(call container.list)"
kill -0 "$PID" || fail "the runner did not survive the reset"

note "warmup again, with another function's code"
call container.warmup "{\"id\":\"$ID\",\"code_dir\":\"$DATA/code/extracted/other\",\"memory_mb\":256,\"identity\":$(identity other)}" >/dev/null
[ "$(inside "$PID" 'ls -A /var/task')" = README ] || fail "/var/task: $(inside "$PID" 'ls -A /var/task')"
[ "$(field "$ID" 'c["identity"]["name"], c["memory_mb"]')" = "('other', 256)" ] || fail "list after the second warmup"

note "the runner starts a new runtime after the reset, which sees a clean container"
call container.reset "{\"id\":\"$ID\"}" >/dev/null
call container.warmup "{\"id\":\"$ID\",\"code_dir\":\"$PROBE\",\"memory_mb\":128,\"identity\":$(identity fn)}" >/dev/null
call_rt runtime.start "$START_PARAMS" >/dev/null || fail "the runner refused a new runtime after the reset"
out=$(invoke "$RSOCK" 'ls /tmp')
grep -qx 'entries=0' <<<"$out" || fail "the next function sees /tmp: $out"

note "requests that overlap a reset are refused as busy (-32011)"
out=$(/usr/bin/python3 "$CLIENT" pipeline "$SOCK" \
  "[[\"container.reset\",{\"id\":\"$ID\"}],
    [\"container.warmup\",{\"id\":\"$ID\",\"code_dir\":\"$PROBE\",\"memory_mb\":128,\"identity\":$(identity fn)}],
    [\"container.destroy\",{\"id\":\"$ID\"}],
    [\"container.reset\",{\"id\":\"$ID\"}]]")
[ "$(echo "$out" | /usr/bin/python3 -c 'import json,sys
r = {m["id"]: m for m in map(json.loads, sys.stdin)}
print(r[1]["result"]["state"], [r[i]["error"]["code"] for i in (2, 3, 4)])')" = "cold [-32011, -32011, -32011]" ] ||
  fail "overlapping requests: $out"
grep -q 'is resetting' <<<"$out" || fail "the busy error does not say why: $out"
[ "$(call_error container.warmup "{\"id\":\"$ID\",\"code_dir\":\"$PROBE\",\"memory_mb\":128}")" = -32602 ] ||
  fail "warmup without identity accepted"
call container.warmup "{\"id\":\"$ID\",\"code_dir\":\"$PROBE\",\"memory_mb\":128,\"identity\":$(identity fn)}" >/dev/null
[ "$(call_error container.warmup "{\"id\":\"$ID\",\"code_dir\":\"$PROBE\",\"memory_mb\":128,\"identity\":$(identity fn)}")" = -32011 ] ||
  fail "a second warmup of a warm container is not busy"
[ "$(call_error container.warmup "{\"id\":\"$ID\",\"code_dir\":\"/etc\",\"memory_mb\":128,\"identity\":$(identity fn)}")" = -32602 ] ||
  fail "warmup with /etc accepted"
call container.destroy "{\"id\":\"$ID\"}" >/dev/null
[ ! -e "/proc/$PID" ] || fail "runner survived destroy"
stop_funclet

note "capacity: the node's memory minus --reserved-memory, refused beyond it (-32012)"
start_funclet --pool-size 0
TOTAL=$(info 'j["memory_total_mb"]')
stop_funclet
start_funclet --pool-size 1 --reserved-memory "$((TOTAL - 400))M"
wait_pool 1
[ "$(info 'j["capacity_mb"], j["allocated_mb"], j["free_mb"]')" = "(400, 32, 368)" ] ||
  fail "node.info: $(call node.info)"
A=$(acquire "$PROBE" 256 none | json 'j["id"]')
wait_pool 1
[ "$(info 'j["allocated_mb"], j["free_mb"]')" = "(288, 112)" ] || fail "node.info: $(call node.info)"
out=$(call container.acquire "{\"code_dir\":\"$PROBE\",\"memory_mb\":256,\"identity\":$(identity fn)}" 2>&1) &&
  fail "an acquire beyond capacity succeeded: $out"
[ "$(echo "$out" | json 'j["code"]')" = -32012 ] || fail "acquire beyond capacity: $out"
grep -q 'not enough memory' <<<"$out" || fail "the refusal does not say why: $out"
[ "$(info 'j["allocated_mb"]')" = 288 ] || fail "a refused acquire changed the allocation"
C=$(call container.create '{}' | json 'j["id"]')
[ "$(call_error container.warmup "{\"id\":\"$C\",\"code_dir\":\"$PROBE\",\"memory_mb\":128,\"identity\":$(identity fn)}")" = -32012 ] ||
  fail "a warmup beyond capacity was not refused"
[ "$(field "$C" 'c["state"], c["memory_mb"]')" = "('cold', 32)" ] || fail "a refused warmup left the container changed"
call container.warmup "{\"id\":\"$C\",\"code_dir\":\"$PROBE\",\"memory_mb\":64,\"identity\":$(identity fn)}" >/dev/null ||
  fail "a warmup within capacity was refused"
call container.reset "{\"id\":\"$A\"}" >/dev/null
[ "$(info 'j["allocated_mb"]')" = 128 ] || fail "reset did not give the memory back: $(call node.info)"
stop_funclet
if "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" \
  --reserved-memory "$((TOTAL + 1))M" 2>"$DATA/refused.log"; then
  fail "funclet started with a reserve larger than the node"
fi
grep -q 'leaves 0 MB' "$DATA/refused.log" || fail "no clear refusal: $(cat "$DATA/refused.log")"

note "reset with release: a warmed container joins the pool like a never-warmed one, until it is full"
start_funclet --pool-size 2 --max-containers 3
wait_pool 2
X=$(call container.create '{}' | json 'j["id"]')
W=$(acquire "$PROBE" 128 none | json 'j["id"]')
[ "$(info 'j["containers"], j["pool"]["cold"]')" = "(3, 1)" ] || fail "node.info: $(call node.info)"
[ "$(call container.reset "{\"id\":\"$W\",\"release\":true}")" = '{"state":"cold","pooled":true}' ] ||
  fail "a warmed container was not pooled"
[ "$(field "$W" 'c["pooled"], c["state"], c["memory_mb"]')" = "(True, 'cold', 32)" ] || fail "list after release"
[ "$(call container.reset "{\"id\":\"$X\",\"release\":true}")" = '{"state":"destroyed"}' ] ||
  fail "a container was put back into a full pool"
grep -q "$X" <<<"$(call container.list)" && fail "the released container is still listed"
grep -q "container $X destroyed after its reset: the pool is full" "$DATA/funclet.log" ||
  fail "no log of why the container was not pooled"
stop_funclet

note "network: bridge with isolated ports, none, host"
start_funclet --pool-size 2
wait_pool 2
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "the bridge exists before any bridge warmup"
resA=$(acquire "$PROBE" 128 bridge)
resB=$(acquire "$PROBE" 128 bridge)
A=$(echo "$resA" | json 'j["id"]')
PA=$(echo "$resA" | json 'j["pid"]')
ADDR_A=$(echo "$resA" | json 'j["address"]')
PB=$(echo "$resB" | json 'j["pid"]')
ADDR_B=$(echo "$resB" | json 'j["address"]')
[ "$(echo "$resA" | json 'j["gateway"]')" = "$GW" ] || fail "gateway: $resA"
[ "$ADDR_A" != "$ADDR_B" ] || fail "two containers got $ADDR_A"
grep -q "inet $GW/24" <<<"$(ip -o addr show dev "$BRIDGE")" || fail "the bridge has no $GW"
[ "$(ip -o link show master "$BRIDGE" | wc -l)" = 2 ] || fail "ports: $(ip -o link show master "$BRIDGE")"
grep -q 'isolated on' <<<"$(bridge -d link show dev "ve${A#c}")" || fail "port ve${A#c} is not isolated"
grep -q "inet $ADDR_A/24" <<<"$(nsenter -t "$PA" -n ip -o addr show dev eth0)" || fail "eth0 of A has no $ADDR_A"
grep -q "^default via $GW dev eth0" <<<"$(nsenter -t "$PA" -n ip route)" || fail "A has no default route"
PORT=$((20000 + $$ % 20000))
LISTEN='import socket,sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); print("ready", flush=True)
while True: s.accept()[0].close()'
reach() { # PID ADDRESS PORT: connects from the network namespace of PID ("" = the host)
  local code='import socket,sys
s = socket.socket(); s.settimeout(2)
try: s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except OSError as e: print(type(e).__name__)'
  if [ -n "$1" ]; then
    nsenter -t "$1" -n /usr/bin/python3 -c "$code" "$2" "$3"
  else
    /usr/bin/python3 -c "$code" "$2" "$3"
  fi
}
# Each listener is the background job itself (nsenter execs Python), so killing it ends it.
/usr/bin/python3 -c "$LISTEN" "$GW" "$PORT" >"$DATA/listen-gw" 2>&1 &
BG_PIDS+=($!)
nsenter -t "$PB" -n /usr/bin/python3 -c "$LISTEN" "$ADDR_B" "$PORT" >"$DATA/listen-b" 2>&1 &
BG_PIDS+=($!)
for _ in $(seq 100); do
  [ -s "$DATA/listen-gw" ] && [ -s "$DATA/listen-b" ] && break
  sleep 0.05
done
[ "$(reach "$PA" "$GW" "$PORT")" = connected ] || fail "A cannot reach the bridge address"
[ "$(reach "$PB" "$GW" "$PORT")" = connected ] || fail "B cannot reach the bridge address"
[ "$(reach "" "$ADDR_B" "$PORT")" = connected ] || fail "the host cannot reach B (the test's own check)"
[ "$(reach "$PA" "$ADDR_B" "$PORT")" != connected ] || fail "A reached B: ports are not isolated"
resN=$(acquire "$PROBE" 128 none)
[ "$(nsenter -t "$(echo "$resN" | json 'j["pid"]')" -n ip -o link | awk -F': ' '{print $2}')" = lo ] ||
  fail "network none has more than lo"
resH=$(acquire "$PROBE" 128 host)
PH=$(echo "$resH" | json 'j["pid"]')
[ "$(readlink "/proc/$PH/ns/net")" = "$(readlink "/proc/$FUNCLET_PID/ns/net")" ] || fail "network host has its own netns"
grep -q -- '--api-port 0' <<<"$(tr '\0' ' ' <"/proc/$PH/cmdline")" || fail "the runner of a host container keeps port 9001"
[ "$(field "$(echo "$resH" | json 'j["id"]')" 'c["network"], c["pooled"]')" = "('host', False)" ] || fail "list of a host container"
HC=$(call container.create '{"network":"host"}' | json 'j["id"]')
[ "$(call_error container.warmup "{\"id\":\"$HC\",\"code_dir\":\"$PROBE\",\"memory_mb\":64,\"network\":\"bridge\",\"identity\":$(identity fn)}")" = -32602 ] ||
  fail "bridge on a host-network container accepted"
[ "$(call container.reset "{\"id\":\"$HC\",\"release\":true}")" = '{"state":"destroyed"}' ] ||
  fail "a host-network container was put into the pool"
grep -q "container $HC destroyed after its reset: a container without its own network is never pooled" \
  "$DATA/funclet.log" || fail "no log of why the host-network container was not pooled"
[ "$(info 'j["network"]["addresses_used"]')" = 2 ] || fail "addresses: $(call node.info)"
call container.reset "{\"id\":\"$A\"}" >/dev/null
ip link show "ve${A#c}" >/dev/null 2>&1 && fail "the veth of A survived its reset"
[ "$(nsenter -t "$PA" -n ip -o link | wc -l)" = 1 ] || fail "A has more than lo after its reset"
[ "$(info 'j["network"]["addresses_used"]')" = 1 ] || fail "the address of A was not returned"
for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
BG_PIDS=()
stop_funclet
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "the bridge survived funclet's shutdown"

note "recycling: what a killed funclet left is removed at the next start"
start_funclet --pool-size 2
wait_pool 2
resA=$(acquire "$PROBE" 128 bridge)
A=$(echo "$resA" | json 'j["id"]')
PA=$(echo "$resA" | json 'j["pid"]')
PIDS_PARENT=$(dirname "$(cgroup_dir pids "$A")")
NEXT=$(settled parts_ahead)
[ -n "$NEXT" ] || fail "no parts made ahead (the test needs them)"
kill -KILL "$FUNCLET_PID"
wait "$FUNCLET_PID" 2>/dev/null || true
FUNCLET_PID=
for _ in $(seq 100); do
  [ -e "/proc/$PA" ] || break
  sleep 0.05
done
[ ! -e "/proc/$PA" ] || fail "a runner outlived its funclet"
grep -q " $DATA/run/containers/$A/mnt" /proc/self/mountinfo || fail "the crash left no mount (the test needs one)"
ip link show "$BRIDGE" >/dev/null 2>&1 || fail "the crash left no bridge (the test needs one)"
[ -d "$PIDS_PARENT/$A" ] || fail "the crash left no cgroup (the test needs one)"
dev_mounts() { grep -c " $DATA/run/containers/.dev " /proc/self/mountinfo || true; }
[ "$(dev_mounts)" -ge 1 ] || fail "the crash left no /dev tree mounted (the test needs one)"
start_funclet --pool-size 0
# The shared /dev tree is made again, not stacked on the crashed funclet's.
[ "$(dev_mounts)" = 1 ] || fail "the /dev tree is mounted $(dev_mounts) times"
! grep -q " $DATA/run/containers/c" /proc/self/mountinfo || fail "mounts of the crashed funclet remain"
[ ! -e "$DATA/run/containers/$A" ] || fail "the directory of $A remains"
[ ! -d "$PIDS_PARENT/$A" ] || fail "the cgroup of $A remains"
[ ! -e "$DATA/run/containers/$NEXT" ] || fail "the parts made ahead ($NEXT) remain"
[ ! -d "$PIDS_PARENT/c${NEXT#.}" ] || fail "the cgroup made ahead (c${NEXT#.}) remains"
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "the crashed funclet's bridge remains"
grep -q "removed orphan container $A" "$DATA/funclet.log" || fail "no log of the orphan"
stop_funclet

note "nothing is left"
leftovers=$(find /sys/fs/cgroup -type d -name "$PARENT" 2>/dev/null || true)
[ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
! grep -q " $DATA" /proc/self/mountinfo || fail "mounts left behind: $(grep " $DATA" /proc/self/mountinfo)"
[ -z "$(ls -A "$DATA/run/containers")" ] ||
  fail "container directories left: $(ls -A "$DATA/run/containers")"
echo "PASS: funclet_pool"
