#!/usr/bin/env bash
# Which container the scheduler chooses, through a real pod with more than one candidate:
#  1. a call with no idle container of its function specialises a cold one of funclet's pool;
#  2. among idle warm containers of the function, the most recently used one serves (in both
#     orders of use, so that neither a fixed position nor the age of a container passes for it);
#  3. on a node whose memory (capacity = memory minus --reserved-memory) is full of idle warm
#     containers, a new function reclaims the least recently used idle container of another
#     function, exactly one of them, and runs.
# The sleeper function reports its hostname, which is the id of the container that served it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
require_built easyfaas-funclet easyfaas-controller easyfaas-runner ef-rpc-call

MEMORY_MB=128
EF_CONTROLLER_ARGS="--idle-timeout 10m" pod_start
out=$EF_DATA/out

# host FILE: the container that served a call whose body is in FILE.
host() {
  json_get "$1" 'j["host"]'
}

# call_ok NAME EVENT: invokes NAME, fails unless 200, prints the container that served.
call_ok() {
  local code
  code=$(invoke "$1" "$2")
  [ "$code" = 200 ] || fail "$1 $2: $code $(cat "$out")"
  host "$out"
}

# bg_ok TAG: the call started by invoke_bg TAG answered 200; prints the container that served.
bg_ok() {
  [ "$(cat "$EF_DATA/$1.code")" = 200 ] || fail "call $1: $(cat "$EF_DATA/$1.code") $(cat "$EF_DATA/$1.out")"
  host "$EF_DATA/$1.out"
}

# by_last_use NAME...: the ids of the functions' idle containers, least recently used first
# (by the last_used_ms of GET /v1/runtimes).
by_last_use() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import json, sys
cs = [c for c in json.load(sys.stdin) if c["function"] in sys.argv[1:] and c["state"] == "idle"]
print(" ".join(c["id"] for c in sorted(cs, key=lambda c: c["last_used_ms"])))' "$@"
}

# node_info EXPR: a Python expression on funclet's node.info result `j`.
node_info() {
  "$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" node.info |
    /usr/bin/python3 -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# pooled_cold_ids: the ids of the cold spares in funclet's pool.
pooled_cold_ids() {
  funclet_list | awk '$2 == "cold" && $3 == "pooled" { print $1 }' | sort | tr '\n' ' '
}

# pool_has_spares N: whether funclet's pool holds N cold spares.
pool_has_spares() {
  [ "$(funclet_list | awk '$2 == "cold" && $3 == "pooled"' | wc -l)" = "$1" ]
}

# reclaims: how many containers the controller discarded for capacity so far.
reclaims() {
  grep -c 'discarding container .*: the node is out of capacity' "$EF_DATA/controller.log" || true
}

for f in f a b c; do
  [ "$(create_function $f python3.11 app.handler "$SLEEPER" ",\"Timeout\":30,\"MemorySize\":$MEMORY_MB")" = 201 ] ||
    fail "create $f: $(cat "$EF_DATA/create-$f.json")"
done

note "no idle container: a cold spare of funclet's pool is specialised"
spares=$(node_info 'j["pool"]["size"]')
[ "$spares" -ge 2 ] || fail "funclet's pool is too small for this test: $spares"
wait_for 60 "funclet's pool to fill" pool_has_spares "$spares"
cold=$(pooled_cold_ids)
first=$(call_ok f '{}')
[[ " $cold" == *" $first "* ]] || fail "the first call ran in $first, not in one of the spares: $cold"
[ "$(funclet_list | awk -v id="$first" '$1 == id { print $2, $3 }')" = "warm held" ] ||
  fail "funclet does not list $first as warm and held: $(funclet_list)"

note "two overlapping calls: a second warm container"
invoke_bg f '{"sleep": 1}' w1
invoke_bg f '{"sleep": 1}' w2
wait_bg
w1=$(bg_ok w1)
w2=$(bg_ok w2)
[ "$w1" != "$w2" ] || fail "two overlapping calls ran in one container $w1"
[[ "$w1" == "$first" || "$w2" == "$first" ]] || fail "neither call reused the idle $first ($w1, $w2)"
wait_for 30 "both of f's containers idle" pool_is f idle 2

note "the most recently used idle container serves"
read -r lru mru <<<"$(by_last_use f)"
[ -n "$mru" ] && [ -n "$lru" ] || fail "f has not two idle containers: $(curl -sS "$EF_BASE/v1/runtimes")"
got=$(call_ok f '{}')
[ "$got" = "$mru" ] || fail "the call ran in $got, not in the most recently used $mru (the other: $lru)"

note "the other order: the container used last before is the one that serves"
# The first call takes the most recently used container; the second, started while the first
# is busy, takes the other one and ends last, which makes that one the most recently used.
invoke_bg f '{"sleep": 2}' o1
wait_for 30 "f's first call to be running" pool_is f busy 1
invoke_bg f '{"sleep": 4}' o2
wait_bg
[ "$(bg_ok o1)" = "$mru" ] || fail "the first call ran in $(bg_ok o1), not in the most recently used $mru"
[ "$(bg_ok o2)" = "$lru" ] || fail "the second call ran in $(bg_ok o2), not in the idle $lru"
wait_for 30 "both of f's containers idle" pool_is f idle 2
[ "$(by_last_use f)" = "$mru $lru" ] ||
  fail "expected $lru to be the most recently used now: $(curl -sS "$EF_BASE/v1/runtimes")"
got=$(call_ok f '{}')
[ "$got" = "$lru" ] || fail "the call ran in $got, not in the most recently used $lru (the other: $mru)"
got=$(call_ok f '{}')
[ "$got" = "$lru" ] || fail "a call right after ran in $got, not in $lru again"
pod_stop
remove_cgroups "$EF_CGROUP_PARENT"
remove_data "$EF_DATA"

note "a node with room for three containers of $MEMORY_MB MB"
# Capacity is the node's memory (or funclet's cgroup limit, when lower) minus --reserved-memory:
# three containers fit, a fourth does not. No cold spares, so that only warm containers count.
CAPACITY_MB=$((3 * MEMORY_MB + MEMORY_MB / 2))
total_mb=$(($(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) / 1024))
EF_FUNCLET_ARGS="--pool-size 0 --reserved-memory $((total_mb - CAPACITY_MB))M" \
  EF_CONTROLLER_ARGS="--idle-timeout 10m" pod_start
out=$EF_DATA/out
if [ "$(node_info 'j["capacity_mb"]')" != "$CAPACITY_MB" ]; then
  # funclet's own cgroup has a memory limit below the node's memory: reserve from that.
  total_mb=$(node_info 'j["memory_total_mb"]')
  kill -TERM "$FUNCLET_PID"
  wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
  EF_FUNCLET_ARGS="--pool-size 0 --reserved-memory $((total_mb - CAPACITY_MB))M" funclet_start
  wait_for 30 "the controller to reconnect to funclet" funclet_connected
fi
[ "$(node_info 'j["capacity_mb"]')" = "$CAPACITY_MB" ] ||
  fail "funclet's capacity is not $CAPACITY_MB MB: $("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" node.info)"
for f in a b c; do
  [ "$(create_function $f python3.11 app.handler "$SLEEPER" ",\"Timeout\":30,\"MemorySize\":$MEMORY_MB")" = 201 ] ||
    fail "create $f: $(cat "$EF_DATA/create-$f.json")"
done

note "filling it: two idle containers of a, then one of b, then both of a used again"
invoke_bg a '{"sleep": 1}' a1
invoke_bg a '{"sleep": 1}' a2
wait_bg
[ "$(bg_ok a1)" != "$(bg_ok a2)" ] || fail "a's overlapping calls shared a container"
wait_for 30 "a's containers idle" pool_is a idle 2
b1=$(call_ok b '{}')
# a's containers are used after b's, so b's, created last, is the least recently used: the
# choice cannot be the oldest container, nor the newest.
invoke_bg a '{"sleep": 2}' a3
wait_for 30 "a's first call to be running" pool_is a busy 1
invoke_bg a '{"sleep": 4}' a4
wait_bg
a_old=$(bg_ok a3)
a_new=$(bg_ok a4)
[ "$a_old" != "$a_new" ] || fail "a's overlapping calls shared container $a_old"
wait_for 30 "a's containers idle" pool_is a idle 2
[ "$(by_last_use a b)" = "$b1 $a_old $a_new" ] ||
  fail "not the order of use set up: $(by_last_use a b), expected $b1 $a_old $a_new"
[ "$(node_info 'j["allocated_mb"]')" = $((3 * MEMORY_MB)) ] ||
  fail "funclet does not have three containers' memory allocated: $(node_info 'j')"
[ "$(reclaims)" = 0 ] || fail "containers were reclaimed while filling the node"

note "a new function reclaims the least recently used idle container of another function"
c1=$(call_ok c '{}')
[[ "$c1" != "$b1" && "$c1" != "$a_old" && "$c1" != "$a_new" ]] || fail "c ran in $c1, a container of another function"
[ "$(pool_ids a)" = "$(printf '%s\n' "$a_old" "$a_new" | sort | paste -sd ' ')" ] ||
  fail "a lost a container, not b: $(curl -sS "$EF_BASE/v1/runtimes")"
[ "$(pool_count b)" = 0 ] || fail "b's container $b1 was not reclaimed: $(curl -sS "$EF_BASE/v1/runtimes")"
[ "$(reclaims)" = 1 ] || fail "expected exactly one reclaim: $(grep 'out of capacity' "$EF_DATA/controller.log")"
grep -q "discarding container $b1 of function b: the node is out of capacity" "$EF_DATA/controller.log" ||
  fail "no log line for the reclaim of $b1"
grep -q "reclaimed 1 idle container(s) of other functions" "$EF_DATA/controller.log" ||
  fail "no log line for the invocation's reclaim"
wait_for 30 "funclet to destroy $b1" eval '! funclet_has '"$b1"

note "again: of a's two containers and c's, the one of a used longest ago goes"
[ "$(by_last_use a c)" = "$a_old $a_new $c1" ] || fail "not the order of use expected: $(by_last_use a c)"
b2=$(call_ok b '{}')
[[ "$b2" != "$a_old" && "$b2" != "$a_new" && "$b2" != "$c1" ]] || fail "b ran in $b2, a container of another function"
[ "$(pool_ids a)" = "$a_new" ] || fail "expected only $a_new left of a: $(curl -sS "$EF_BASE/v1/runtimes")"
[ "$(pool_ids c)" = "$c1" ] || fail "c's container went: $(curl -sS "$EF_BASE/v1/runtimes")"
[ "$(reclaims)" = 2 ] || fail "expected exactly two reclaims: $(grep 'out of capacity' "$EF_DATA/controller.log")"
grep -q "discarding container $a_old of function a: the node is out of capacity" "$EF_DATA/controller.log" ||
  fail "no log line for the reclaim of $a_old"
wait_for 30 "funclet to destroy $a_old" eval '! funclet_has '"$a_old"
[ "$(node_info 'j["allocated_mb"]')" = $((3 * MEMORY_MB)) ] ||
  fail "funclet's allocation after the reclaims: $(node_info 'j')"

note "the survivors still serve, warm"
[ "$(call_ok a '{}')" = "$a_new" ] || fail "a's remaining container did not serve"
[ "$(call_ok c '{}')" = "$c1" ] || fail "c's container did not serve"
[ "$(reclaims)" = 2 ] || fail "a warm call reclaimed a container"

pod_stop
echo "PASS"
