#!/usr/bin/env bash
# Per-container concurrency through a real pod: a function created with
# PerExecutionEnvironmentMaxConcurrency N has up to N invocations served at once by one
# container (the runtime sees AWS_LAMBDA_MAX_CONCURRENCY=N; the Python runtime answers with N
# worker processes); an N+1st starts a second container; a burst at a cold function starts one
# container for up to N calls; a timeout fails only its own call: the container drains (the
# other call in flight gets its own result, new calls go elsewhere) and is destroyed after it,
# while at N = 1 it is destroyed at once; the setting is validated, reported in
# FunctionConfiguration, and changing it gives the function new containers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
pod_start

# answers TAG N: the JSON answers of invocations TAG1 … TAGN as one JSON array.
answers() {
  local files=()
  for i in $(seq "$2"); do
    [ "$(cat "$EF_DATA/$1$i.code")" = 200 ] || fail "$1$i gave $(cat "$EF_DATA/$1$i.code"): $(cat "$EF_DATA/$1$i.out")"
    files+=("$EF_DATA/$1$i.out")
  done
  /usr/bin/python3 -c 'import json, sys; print(json.dumps([json.load(open(f)) for f in sys.argv[1:]]))' "${files[@]}"
}

# check JSON PYTHON-EXPR WHAT: fails unless the expression over `a` (the answers) is true.
check() {
  /usr/bin/python3 -c 'import json, sys; a = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$1" "$2" || fail "$3: $1"
}

note "validation: PerExecutionEnvironmentMaxConcurrency must be 1–64"
for bad in 0 65 '"four"'; do
  [ "$(create_function bad python3.11 app.handler "$SLEEPER" ",\"PerExecutionEnvironmentMaxConcurrency\":$bad")" = 400 ] ||
    fail "concurrency $bad was accepted: $(cat "$EF_DATA/create-bad.json")"
  grep -qi PerExecutionEnvironmentMaxConcurrency "$EF_DATA/create-bad.json" ||
    fail "the error does not name the field: $(cat "$EF_DATA/create-bad.json")"
done

note "create a function whose containers serve 4 invocations at once"
[ "$(create_function conc python3.11 app.handler "$SLEEPER" ',"Timeout":30,"PerExecutionEnvironmentMaxConcurrency":4')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-conc.json")"
[ "$(json_get "$EF_DATA/create-conc.json" 'j["PerExecutionEnvironmentMaxConcurrency"]')" = 4 ] ||
  fail "CreateFunction's answer lacks the setting: $(cat "$EF_DATA/create-conc.json")"
curl -fsS "$EF_BASE/2015-03-31/functions/conc/configuration" >"$EF_DATA/conf.json"
[ "$(json_get "$EF_DATA/conf.json" 'j["PerExecutionEnvironmentMaxConcurrency"]')" = 4 ] ||
  fail "GetFunctionConfiguration: $(cat "$EF_DATA/conf.json")"
[ "$(invoke conc '{}')" = 200 ] || fail "first invocation: $(cat "$EF_DATA/out")"

note "4 invocations of 1 s at once run together in the one warm container"
start=$(date +%s%3N)
for i in 1 2 3 4; do invoke_bg conc '{"sleep": 1}' "a$i"; done
wait_bg
ms=$(($(date +%s%3N) - start))
a=$(answers a 4)
check "$a" 'len({x["host"] for x in a}) == 1' "one container served all four"
check "$a" 'len({x["pid"] for x in a}) == 4' "four worker processes served them"
check "$a" 'len({x["request_id"] for x in a}) == 4' "each has its own request id"
[ "$ms" -lt 2500 ] || fail "four 1 s invocations at concurrency 4 took $ms ms: they did not overlap"
[ "$(pool_count conc)" = 1 ] || fail "expected one container: $(curl -sS "$EF_BASE/v1/runtimes")"
curl -fsS "$EF_BASE/v1/runtimes" >"$EF_DATA/runtimes.json"
/usr/bin/python3 -c '
import json, sys
c = [c for c in json.load(open(sys.argv[1])) if c["function"] == "conc"][0]
sys.exit(0 if c["max_in_flight"] == 4 and c["in_flight"] == 0 and c["state"] == "idle" else 1)' \
  "$EF_DATA/runtimes.json" || fail "GET /v1/runtimes: $(cat "$EF_DATA/runtimes.json")"

note "while 4 are in flight the container is full: a 5th starts a second container"
for i in 1 2 3 4 5; do invoke_bg conc '{"sleep": 2}' "b$i"; done
wait_bg
b=$(answers b 5)
check "$b" 'len({x["host"] for x in a}) == 2' "a second container served the fifth"
[ "$(pool_count conc)" = 2 ] || fail "expected two containers: $(curl -sS "$EF_BASE/v1/runtimes")"

note "a burst at a cold function: 4 calls at once start one container, not four"
[ "$(create_function burst python3.11 app.handler "$SLEEPER" ',"Timeout":30,"PerExecutionEnvironmentMaxConcurrency":4')" = 201 ] ||
  fail "create burst: $(cat "$EF_DATA/create-burst.json")"
for i in 1 2 3 4; do invoke_bg burst '{"sleep": 1}' "d$i"; done
wait_bg
d=$(answers d 4)
check "$d" 'len({x["host"] for x in a}) == 1' "one container served the cold burst"
[ "$(pool_count burst)" = 1 ] || fail "a cold burst of 4 made $(pool_count burst) containers"

note "a timeout leaves the other invocation in flight in the container alone; the container then goes"
# Timeout 6 s. t1 sleeps far beyond it; t2 starts 3.5 s later and sleeps 5 s, so it is in flight
# when t1 times out (at about 6 s), 1 s before its own deadline, and the container drains for
# about 2.5 s: time enough to look at it and to start another container meanwhile.
[ "$(create_function tmo python3.11 app.handler "$SLEEPER" ',"Timeout":6,"PerExecutionEnvironmentMaxConcurrency":2')" = 201 ] ||
  fail "create tmo: $(cat "$EF_DATA/create-tmo.json")"
[ "$(invoke tmo '{}')" = 200 ] || fail "warm tmo: $(cat "$EF_DATA/out")"
host=$(json_get "$EF_DATA/out" 'j["host"]')
(invoke tmo '{"sleep": 60}' "$EF_DATA/t1.out" >"$EF_DATA/t1.code") &
T1=$!
sleep 3.5
invoke_bg tmo '{"sleep": 5}' t2
wait "$T1" || true
grep -q "Task timed out after 6.00 seconds" "$EF_DATA/t1.out" || fail "the first did not time out: $(cat "$EF_DATA/t1.out")"
bg_running || fail "the one beside it ended with the timeout: $(cat "$EF_DATA/t2.out")"
curl -fsS "$EF_BASE/v1/runtimes" >"$EF_DATA/runtimes.json"
/usr/bin/python3 -c '
import json, sys
c = [c for c in json.load(open(sys.argv[1])) if c["id"] == sys.argv[2]]
sys.exit(0 if c and c[0]["state"] == "draining" and c[0]["in_flight"] == 1 else 1)' \
  "$EF_DATA/runtimes.json" "$host" || fail "GET /v1/runtimes during the drain: $(cat "$EF_DATA/runtimes.json")"
metrics=$(curl -fsS "$EF_BASE/metrics")
grep -qx 'easyfaas_containers{state="draining"} 1' <<<"$metrics" ||
  fail "/metrics during the drain: $(grep easyfaas_containers <<<"$metrics")"
note "while it drains, a new invocation goes to another container"
[ "$(invoke tmo '{}' "$EF_DATA/t3.out")" = 200 ] || fail "during the drain: $(cat "$EF_DATA/t3.out")"
[ "$(json_get "$EF_DATA/t3.out" 'j["host"]')" != "$host" ] ||
  fail "the draining container took a new invocation: $(cat "$EF_DATA/t3.out")"
bg_running || fail "t2 ended before the invocation during the drain: $(cat "$EF_DATA/t2.out")"
wait_bg
[ "$(cat "$EF_DATA/t2.code")" = 200 ] && ! grep -q errorType "$EF_DATA/t2.out" ||
  fail "the one in flight beside the timeout: $(cat "$EF_DATA/t2.out")"
[ "$(json_get "$EF_DATA/t2.out" 'j["host"]')" = "$host" ] ||
  fail "t2 ran elsewhere than the timed-out container $host: $(cat "$EF_DATA/t2.out")"
note "after its last invocation, the drained container is gone"
[[ " $(pool_ids tmo) " != *" $host "* ]] || fail "$host is still in the pool: $(curl -sS "$EF_BASE/v1/runtimes")"
for _ in $(seq 100); do
  funclet_list | grep -q "^$host " || break
  sleep 0.05
done
funclet_list | grep -q "^$host " && fail "funclet still has $host: $(funclet_list)"
[ "$(invoke tmo '{}')" = 200 ] && ! grep -q errorType "$EF_DATA/out" ||
  fail "after the drain a new container serves: $(cat "$EF_DATA/out")"
[ "$(json_get "$EF_DATA/out" 'j["host"]')" != "$host" ] || fail "the drained container served again"
grep -q "timed out in container $host: it takes no new invocation" "$EF_DATA/controller.log" ||
  fail "the controller did not log the drain"

note "with one invocation per container, a timeout still discards its container at once"
[ "$(create_function tmo1 python3.11 app.handler "$SLEEPER" ',"Timeout":1')" = 201 ] ||
  fail "create tmo1: $(cat "$EF_DATA/create-tmo1.json")"
[ "$(invoke tmo1 '{}')" = 200 ] || fail "warm tmo1: $(cat "$EF_DATA/out")"
host1=$(json_get "$EF_DATA/out" 'j["host"]')
[ "$(invoke tmo1 '{"sleep": 30}')" = 200 ] && grep -q "Task timed out after 1.00 seconds" "$EF_DATA/out" ||
  fail "tmo1's timeout: $(cat "$EF_DATA/out")"
[ "$(pool_count tmo1)" = 0 ] || fail "the timed-out container is still in the pool: $(curl -sS "$EF_BASE/v1/runtimes")"
[ "$(invoke tmo1 '{}')" = 200 ] && [ "$(json_get "$EF_DATA/out" 'j["host"]')" != "$host1" ] ||
  fail "after the timeout a new container serves tmo1: $(cat "$EF_DATA/out")"

note "back to one at a time: the function gets new containers, and calls do not overlap in one"
code=$(curl -sS -o "$EF_DATA/upd.json" -w '%{http_code}' -X PUT \
  "$EF_BASE/2015-03-31/functions/conc/configuration" -d '{"PerExecutionEnvironmentMaxConcurrency": 1}')
[ "$code" = 200 ] || fail "UpdateFunctionConfiguration gave $code: $(cat "$EF_DATA/upd.json")"
[ "$(json_get "$EF_DATA/upd.json" 'j["PerExecutionEnvironmentMaxConcurrency"]')" = 1 ] ||
  fail "update answer: $(cat "$EF_DATA/upd.json")"
for i in 1 2 3; do invoke_bg conc '{"sleep": 1}' "c$i"; done
wait_bg
c=$(answers c 3)
check "$c" 'len({x["host"] for x in a}) == 3' "three containers for three calls at concurrency 1"
check "[$a, $b, $c]" 'not ({x["host"] for x in a[2]} & {x["host"] for x in a[0] + a[1]})' \
  "new containers after the change"
code=$(curl -sS -o "$EF_DATA/upd.json" -w '%{http_code}' -X PUT \
  "$EF_BASE/2015-03-31/functions/conc/configuration" -d '{"PerExecutionEnvironmentMaxConcurrency": 100}')
[ "$code" = 400 ] || fail "an update to 100 gave $code: $(cat "$EF_DATA/upd.json")"

pod_stop
assert_pod_gone
echo "PASS"
