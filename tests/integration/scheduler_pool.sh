#!/usr/bin/env bash
# The warm pool's lifecycle through a real pod: an idle container is cooled down after
# --idle-timeout; a timed-out invocation's container is destroyed and the next call gets a fresh
# one; an idle runner that dies, or that stops answering (SIGSTOP), is destroyed and replaced by a
# new warm container ("reborn") found by the health checks; a runner stopped during an invocation
# is found by a ping past the Timeout, and the call ends with the timeout error; a runner that
# dies during an invocation fails it with Runtime.ExitError; a function error keeps the
# container, and so does a client that hangs up; functions never share a container; a stop does
# not wait for invocations in flight.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
EF_CONTROLLER_ARGS="--idle-timeout 2s --health-interval 1s" pod_start
out=$EF_DATA/out

[ "$(create_function pool python3.11 app.handler "$SLEEPER" ',"Timeout":1')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-pool.json")"

note "idle keep-alive: the container is cooled down after --idle-timeout"
[ "$(invoke pool '{}')" = 200 ] || fail "first call: $(cat "$out")"
id=$(pool_ids pool)
[ -n "$id" ] || fail "no container after a call"
funclet_has "$id" || fail "funclet does not know container $id"
sleep 1
[ "$(pool_count pool idle)" = 1 ] || fail "the container went before its keep-alive ended"
wait_for 10 "the idle container to leave the pool" pool_is pool any 0
wait_for 10 "funclet to destroy container $id" eval '! funclet_has '"$id"
grep -q "retiring container $id of function pool: idle for" "$EF_DATA/controller.log" ||
  fail "no log line for the cool-down"
[ "$(invoke pool '{}')" = 200 ] || fail "call after the cool-down: $(cat "$out")"
[ "$(json_get "$out" 'j["count"]')" = 1 ] || fail "the call after the cool-down was not a cold start: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" != "$id" ] || fail "the cooled-down container served again"

note "a timeout recycles the container"
controller_restart --idle-timeout 60s --health-interval 1s
[ "$(invoke pool '{}')" = 200 ] || fail "warm-up: $(cat "$out")"
id=$(pool_ids pool)
curl -sS -D "$EF_DATA/h" -o "$out" -X POST "$EF_BASE/2015-03-31/functions/pool/invocations" -d '{"sleep": 3}'
grep -qi '^x-amz-function-error: Unhandled' "$EF_DATA/h" || fail "timeout without X-Amz-Function-Error: $(cat "$out")"
rid=$(grep -i '^x-amzn-requestid:' "$EF_DATA/h" | cut -d' ' -f2 | tr -d '\r')
# Lambda's words: "<ISO time> <request id> Task timed out after 1.00 seconds".
[[ "$(json_get "$out" 'j["errorMessage"]')" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z\ $rid\ Task\ timed\ out\ after\ 1\.00\ seconds$ ]] ||
  fail "timeout message: $(cat "$out")"
wait_for 10 "funclet to destroy the timed-out container $id" eval '! funclet_has '"$id"
case " $(pool_ids pool) " in *" $id "*) fail "the timed-out container $id is still in the pool" ;; esac
[ "$(invoke pool '{}')" = 200 ] || fail "call after the timeout: $(cat "$out")"
[ "$(json_get "$out" 'j["count"]')" = 1 ] && [ "$(json_get "$out" 'j["host"]')" != "$id" ] ||
  fail "the call after the timeout did not get a fresh container: $(cat "$out")"

note "a dead idle runner is destroyed and replaced"
id=$(pool_ids pool)
pid=$(funclet_pid "$id")
[ -n "$pid" ] || fail "no pid for container $id"
kill -KILL "$pid"
replaced() {
  local ids
  ids=$(pool_ids pool)
  [ -n "$ids" ] && [ "$ids" != "$id" ] && [ "$(pool_count pool idle)" = 1 ]
}
wait_for 10 "a replacement of the dead container $id" replaced
new=$(pool_ids pool)
[ "$(invoke pool '{}')" = 200 ] || fail "call after the runner died: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" = "$new" ] || fail "the replacement $new did not serve: $(cat "$out")"
[ "$(json_get "$out" 'j["count"]')" = 1 ] || fail "the replacement had served before: $(cat "$out")"

note "a wedged idle runner (stopped) fails its health check, is destroyed and replaced"
id=$new
pid=$(funclet_pid "$id")
kill -STOP "$pid"
# Health checks every second; two pings in a row unanswered for 2 s each fail.
wait_for 15 "funclet to destroy the wedged container $id" eval '! funclet_has '"$id"
wait_for 10 "a replacement of the wedged container" replaced
grep -q "container $id of function pool: its runner did not answer 2 health checks of 2000 ms" "$EF_DATA/controller.log" ||
  fail "no log line for the failed health check"
[ "$(invoke pool '{}')" = 200 ] || fail "call after the wedged runner: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" != "$id" ] || fail "the wedged container served: $(cat "$out")"
metrics=$(curl -fsS "$EF_BASE/metrics")
grep -q '^easyfaas_containers_reborn_total 2$' <<<"$metrics" ||
  fail "reborn containers not counted: $(grep reborn <<<"$metrics")"

note "a runner wedged during a warm invocation: the caller gets the timeout soon after the Timeout"
# Without the handover the warm call goes through the runner, and with health checks far apart
# only the controller can end it. Its deadline for the call also covers a runtime's init or
# late poll (Timeout + 10 s + 500 ms); before that, 500 ms past the Timeout, it pings the runner,
# and two pings unanswered for 2 s each end the call (runner_watch.h): ~5.5 s for this Timeout.
controller_restart --idle-timeout 60s --health-interval 60s --runtime-handover off
[ "$(invoke pool '{}')" = 200 ] || fail "warm-up: $(cat "$out")"
id=$(pool_ids pool)
pid=$(funclet_pid "$id")
[ -n "$pid" ] || fail "no pid for container $id"
curl -sS -D "$EF_DATA/h" -o "$out" -w '%{time_total}' -X POST \
  "$EF_BASE/2015-03-31/functions/pool/invocations" -d '{"sleep": 0.9}' >"$EF_DATA/t" &
curl_pid=$!
sleep 0.3
kill -STOP "$pid"
wait "$curl_pid" || fail "the call to the wedged runner failed: $(cat "$out")"
kill -CONT "$pid" 2>/dev/null || true
grep -qi '^x-amz-function-error: Unhandled' "$EF_DATA/h" &&
  json_get "$out" 'j["errorMessage"]' | grep -q 'Task timed out after 1.00 seconds$' ||
  fail "the wedged runner's call did not time out: $(cat "$EF_DATA/h" "$out")"
/usr/bin/python3 -c 'import sys; sys.exit(not 5 <= float(sys.argv[1]) < 10)' "$(cat "$EF_DATA/t")" ||
  fail "the timeout came after $(cat "$EF_DATA/t") s, not two pings after the Timeout (5.5 s)"
grep -q "container $id of function pool: its runner did not answer 2 pings of 2000 ms while an invocation was past its Timeout" \
  "$EF_DATA/controller.log" || fail "no log line for the wedged runner"
wait_for 10 "funclet to destroy the wedged container $id" eval '! funclet_has '"$id"
controller_restart --idle-timeout 60s --health-interval 1s

note "a function error keeps the container; another function never shares it"
[ "$(create_function long python3.11 app.handler "$SLEEPER" ',"Timeout":30')" = 201 ] || fail "create long"
[ "$(invoke long '{}')" = 200 ] || fail "long: $(cat "$out")"
host=$(json_get "$out" 'j["host"]')
curl -sS -D "$EF_DATA/h" -o "$out" -X POST "$EF_BASE/2015-03-31/functions/long/invocations" -d '{"fail": true}'
grep -qi '^x-amz-function-error: Unhandled' "$EF_DATA/h" && [ "$(json_get "$out" 'j["errorType"]')" = ValueError ] ||
  fail "function error: $(cat "$out")"
[ "$(invoke long '{}')" = 200 ] || fail "long after the error: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" = "$host" ] && [ "$(json_get "$out" 'j["count"]')" = 3 ] ||
  fail "the function error cost the container: $(cat "$out")"
[ "$(invoke pool '{}')" = 200 ] || fail "pool: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" != "$host" ] || fail "two functions shared container $host"

note "a client that hangs up: the invocation completes and the container stays warm"
curl -sS -o /dev/null --max-time 0.5 -X POST "$EF_BASE/2015-03-31/functions/long/invocations" \
  -d '{"sleep": 1.5}' && fail "curl was not cut off"
wait_for 10 "the abandoned invocation to finish" pool_is long idle 1
[ "$(invoke long '{}')" = 200 ] || fail "long after the hang-up: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" = "$host" ] && [ "$(json_get "$out" 'j["count"]')" = 5 ] ||
  fail "the abandoned invocation did not run to its end on the same container: $(cat "$out")"

note "a runner that dies during an invocation: Runtime.ExitError, a fresh container next"
invoke_bg long '{"sleep": 10}' crash
wait_for 10 "a busy container" pool_is long busy 1
kill -KILL "$(funclet_pid "$host")"
wait_bg
[ "$(cat "$EF_DATA/crash.code")" = 200 ] && [ "$(json_get "$EF_DATA/crash.out" 'j["errorType"]')" = Runtime.ExitError ] ||
  fail "the crash: $(cat "$EF_DATA/crash.code") $(cat "$EF_DATA/crash.out")"
[[ "$(json_get "$EF_DATA/crash.out" 'j["errorMessage"]')" =~ ^RequestId:\ [0-9a-f-]+\ Error:\ Runtime\ exited ]] ||
  fail "the crash's message: $(cat "$EF_DATA/crash.out")"
wait_for 10 "funclet to destroy the crashed container" eval '! funclet_has '"$host"
[ "$(invoke long '{}')" = 200 ] || fail "long after the crash: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" != "$host" ] || fail "the crashed container served again"

note "a stop does not wait for an invocation in flight, and leaves nothing behind"
invoke_bg long '{"sleep": 20}' stuck
wait_for 10 "a busy container" pool_is long busy 1
runner_pids=$(funclet_list | awk '{ print $4 }')
start=$SECONDS
pod_stop
[ $((SECONDS - start)) -le 3 ] || fail "the stop took $((SECONDS - start)) s"
wait_bg
[ "$(cat "$EF_DATA/stuck.code")" != 200 ] || fail "the interrupted invocation answered 200"
# shellcheck disable=SC2086 # one pid per word
assert_pod_gone $runner_pids
echo "PASS"
