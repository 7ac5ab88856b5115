#!/usr/bin/env bash
# The scheduler's admission through a real pod: reserved concurrency gives 429 exactly beyond the
# limit when nothing may wait; a queue absorbs a burst three times the limit; a wait that ends
# without a slot is 429; the node-wide --max-concurrency throttles with its own Reason.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
EF_CONTROLLER_ARGS="--queue-depth 0" pod_start
N=2

note "create a slow function with reserved concurrency $N"
[ "$(create_function slow python3.11 app.handler "$SLEEPER" ',"Timeout":30')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-slow.json")"
put_concurrency slow $N
# Warm both containers first, so that the limit, not cold starts, is what is measured.
invoke_bg slow '{"sleep": 1}' warm1
invoke_bg slow '{"sleep": 1}' warm2
wait_bg
[ "$(cat "$EF_DATA/warm1.code") $(cat "$EF_DATA/warm2.code")" = "200 200" ] ||
  fail "warm-up calls: $(cat "$EF_DATA/warm1.out" "$EF_DATA/warm2.out")"

note "queue depth 0: $N slow calls in flight, the next one is 429 at once"
for i in $(seq $N); do invoke_bg slow '{"sleep": 3}' "inflight$i"; done
wait_for 10 "$N busy containers" pool_is slow busy $N
start=$SECONDS
code=$(invoke slow '{}' "$EF_DATA/throttled.json")
[ "$code" = 429 ] || fail "call $((N + 1)) gave $code, not 429: $(cat "$EF_DATA/throttled.json")"
[ $((SECONDS - start)) -le 1 ] || fail "the throttled call took $((SECONDS - start)) s: it should not wait"
[ "$(reason "$EF_DATA/throttled.json")" = ReservedFunctionConcurrentInvocationLimitExceeded ] ||
  fail "429 Reason: $(cat "$EF_DATA/throttled.json")"
curl -sS -D "$EF_DATA/h" -o /dev/null -X POST "$EF_BASE/2015-03-31/functions/slow/invocations" -d '{}'
grep -qi '^x-amzn-errortype: TooManyRequestsException' "$EF_DATA/h" || fail "429 without x-amzn-ErrorType"
wait_bg
for i in $(seq $N); do
  [ "$(cat "$EF_DATA/inflight$i.code")" = 200 ] || fail "in-flight call $i: $(cat "$EF_DATA/inflight$i.out")"
done
[ "$(pool_count slow)" = $N ] || fail "expected exactly $N containers: $(curl -sS "$EF_BASE/v1/runtimes")"
code=$(invoke slow '{}')
[ "$code" = 200 ] || fail "once a slot is free the call runs; got $code"

note "reserved concurrency 0 throttles every call"
put_concurrency slow 0
code=$(invoke slow '{}' "$EF_DATA/zero.json")
[ "$code" = 429 ] && [ "$(reason "$EF_DATA/zero.json")" = ReservedFunctionConcurrentInvocationLimitExceeded ] ||
  fail "reserved 0: $code $(cat "$EF_DATA/zero.json")"
put_concurrency slow $N

note "queue depth 20: a burst of $((3 * N)) one-second calls all succeed on $N containers"
controller_restart --queue-depth 20 --queue-wait 30s
start=$SECONDS
for i in $(seq $((3 * N))); do invoke_bg slow '{"sleep": 1}' "burst$i"; done
# While the burst runs, the pool never holds more than the reserved number of containers.
max_seen=0
while bg_running; do
  n=$(pool_count slow)
  [ "$n" -gt "$max_seen" ] && max_seen=$n
  sleep 0.1
done
wait_bg
elapsed=$((SECONDS - start))
for i in $(seq $((3 * N))); do
  [ "$(cat "$EF_DATA/burst$i.code")" = 200 ] || fail "burst call $i: $(cat "$EF_DATA/burst$i.code") $(cat "$EF_DATA/burst$i.out")"
done
[ "$max_seen" -le $N ] || fail "the pool held $max_seen containers of a function limited to $N"
# Three rounds of one second each on two containers: at least 3 s.
[ "$elapsed" -ge 3 ] || fail "the burst took ${elapsed}s: the limit was not enforced"
hosts=$(/usr/bin/python3 -c 'import json, sys; print(len({json.load(open(f))["host"] for f in sys.argv[1:]}))' "$EF_DATA"/burst*.out)
[ "$hosts" -le $N ] || fail "the burst ran on $hosts containers"

note "a wait that ends without a slot is 429"
controller_restart --queue-depth 5 --queue-wait 1s
put_concurrency slow 1
invoke_bg slow '{"sleep": 4}' long
wait_for 15 "a busy container" pool_is slow busy 1
start=$SECONDS
code=$(invoke slow '{}' "$EF_DATA/expired.json")
waited=$((SECONDS - start))
[ "$code" = 429 ] && [ "$(reason "$EF_DATA/expired.json")" = ReservedFunctionConcurrentInvocationLimitExceeded ] ||
  fail "expired wait: $code $(cat "$EF_DATA/expired.json")"
[ "$waited" -ge 1 ] && [ "$waited" -le 3 ] || fail "the wait lasted ${waited}s, not about 1s"
grep -q 'queue-wait' "$EF_DATA/expired.json" || fail "the message does not say why: $(cat "$EF_DATA/expired.json")"
wait_bg
[ "$(cat "$EF_DATA/long.code")" = 200 ] || fail "the long call: $(cat "$EF_DATA/long.out")"

note "the node-wide limit: --max-concurrency 1 throttles another function with its own Reason"
controller_restart --queue-depth 0 --max-concurrency 1
[ "$(create_function other python3.11 app.handler "$SLEEPER" ',"Timeout":30')" = 201 ] || fail "create other"
invoke_bg slow '{"sleep": 3}' node1
wait_for 15 "a busy container" pool_is slow busy 1
code=$(invoke other '{}' "$EF_DATA/node.json")
[ "$code" = 429 ] && [ "$(reason "$EF_DATA/node.json")" = ConcurrentInvocationLimitExceeded ] ||
  fail "node limit: $code $(cat "$EF_DATA/node.json")"
grep -q 'max-concurrency' "$EF_DATA/node.json" || fail "the message does not say why: $(cat "$EF_DATA/node.json")"
wait_bg
[ "$(invoke other '{}')" = 200 ] || fail "once the node is free the call runs"

pod_stop
echo "PASS"
