#!/usr/bin/env bash
# Capacity through a real pod whose funclet holds one container at most (--max-containers 1, no
# cold pool): a function that finds no room reclaims the least recently used idle container of
# another function; when the only container is busy, the call waits in its queue until it can
# reclaim it; a wait that ends without capacity is 429 ConcurrentInvocationLimitExceeded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
EF_FUNCLET_ARGS="--max-containers 1 --pool-size 0" EF_CONTROLLER_ARGS="--queue-wait 20s" pod_start
out=$EF_DATA/out

for f in fa fb; do
  [ "$(create_function $f python3.11 app.handler "$SLEEPER" ',"Timeout":30')" = 201 ] ||
    fail "create $f: $(cat "$EF_DATA/create-$f.json")"
done

note "no room: the idle container of another function is reclaimed"
[ "$(invoke fa '{}')" = 200 ] || fail "fa: $(cat "$out")"
ida=$(pool_ids fa)
[ "$(invoke fb '{}')" = 200 ] || fail "fb could not get a container: $(cat "$out")"
[ "$(pool_count fa)" = 0 ] && [ "$(pool_count fb)" = 1 ] ||
  fail "expected fa's container reclaimed for fb: $(curl -sS "$EF_BASE/v1/runtimes")"
wait_for 10 "funclet to destroy fa's container $ida" eval '! funclet_has '"$ida"
grep -q "discarding container $ida of function fa: the node is out of capacity" "$EF_DATA/controller.log" ||
  fail "no log line for the reclaim"
# funclet refused fb's container.create (no capacity) before the reclaim: a funclet RPC error.
curl -fsS "$EF_BASE/metrics" | grep -Eq '^easyfaas_funclet_rpc_errors_total\{method="container.create"\} [1-9][0-9]*$' ||
  fail "the refused container.create is not counted: $(curl -fsS "$EF_BASE/metrics" | grep funclet_rpc)"

note "the only container is busy: the call waits for it, then reclaims it"
invoke_bg fb '{"sleep": 3}' busy
wait_for 15 "fb busy" pool_is fb busy 1
start=$SECONDS
code=$(invoke fa '{}')
waited=$((SECONDS - start))
[ "$code" = 200 ] || fail "fa after waiting for capacity: $code $(cat "$out")"
[ "$waited" -ge 1 ] || fail "fa did not wait for fb's call (${waited}s)"
wait_bg
[ "$(cat "$EF_DATA/busy.code")" = 200 ] || fail "fb's call: $(cat "$EF_DATA/busy.out")"
grep -q "waits for capacity" "$EF_DATA/controller.log" || fail "no log line for the capacity wait"

note "a wait for capacity that ends is 429 ConcurrentInvocationLimitExceeded"
controller_restart --queue-wait 1s
invoke_bg fb '{"sleep": 4}' long
wait_for 15 "fb busy" pool_is fb busy 1
code=$(invoke fa '{}' "$EF_DATA/cap.json")
[ "$code" = 429 ] && [ "$(reason "$EF_DATA/cap.json")" = ConcurrentInvocationLimitExceeded ] ||
  fail "capacity wait: $code $(cat "$EF_DATA/cap.json")"
grep -q 'no memory or container left' "$EF_DATA/cap.json" || fail "the message does not say why: $(cat "$EF_DATA/cap.json")"
wait_bg

note "without a queue the same is 429 at once"
controller_restart --queue-depth 0
invoke_bg fb '{"sleep": 3}' long2
wait_for 15 "fb busy" pool_is fb busy 1
start=$SECONDS
code=$(invoke fa '{}' "$EF_DATA/cap0.json")
[ "$code" = 429 ] && [ "$(reason "$EF_DATA/cap0.json")" = ConcurrentInvocationLimitExceeded ] ||
  fail "no queue: $code $(cat "$EF_DATA/cap0.json")"
[ $((SECONDS - start)) -le 1 ] || fail "the call waited without a queue"
wait_bg

pod_stop
echo "PASS"
