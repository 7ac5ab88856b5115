#!/usr/bin/env bash
# End to end, as an operator uses it: funclet and controller in a temp data dir, a Python function
# created from a zip with curl and invoked several times; warm reuse, function errors and log
# tails checked; then both daemons stopped and nothing of theirs left behind.
source "$(dirname "$0")/lib.sh"
require_root
pod_start
fns=$EF_SOURCE_DIR/tests/integration/functions
out=$EF_DATA/out

note "create a function from a zip"
status=$(create_function counter python3.11 app.handler "$fns/counter" \
  ',"MemorySize":256,"Timeout":5,"Environment":{"Variables":{"GREETING":"hi"}}')
[ "$status" = 201 ] || fail "CreateFunction gave $status: $(cat "$EF_DATA/create-counter.json")"
[ "$(json_get "$EF_DATA/create-counter.json" 'j["FunctionName"]')" = counter ] || fail "bad FunctionConfiguration"
[ "$(json_get "$EF_DATA/create-counter.json" 'j["MemorySize"]')" = 256 ] || fail "MemorySize not kept"
status=$(create_function counter python3.11 app.handler "$fns/counter")
[ "$status" = 409 ] || fail "a duplicate CreateFunction gave $status, not 409"

note "invoke it several times"
for i in 1 2 3 4; do
  code=$(curl -sS -o "$out" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions/counter/invocations" -d "{\"n\": $i, \"text\": \"h\u00e9llo\"}")
  [ "$code" = 200 ] || fail "invocation $i gave HTTP $code: $(cat "$out")"
  [ "$(json_get "$out" 'j["event"]["n"]')" = "$i" ] || fail "invocation $i: event not passed: $(cat "$out")"
  [ "$(json_get "$out" 'j["event"]["text"]')" = "héllo" ] || fail "unicode mangled: $(cat "$out")"
  # The module-level counter grows only when the same warm container serves every call.
  [ "$(json_get "$out" 'j["count"]')" = "$i" ] || fail "invocation $i did not reuse the warm container: $(cat "$out")"
done
[ "$(json_get "$out" 'j["uid"]')" != 0 ] || fail "function runs as root"
[ "$(json_get "$out" 'int(j["cap_eff"], 16)')" = 0 ] || fail "function has capabilities: $(cat "$out")"
[ "$(json_get "$out" 'j["no_new_privs"]')" = 1 ] || fail "no_new_privs not set"
[ "$(json_get "$out" 'j["function_name"]')" = counter ] || fail "context.function_name wrong"
[ "$(json_get "$out" 'j["memory_limit_in_mb"]')" = 256 ] || fail "context.memory_limit_in_mb wrong"
[ "$(json_get "$out" '0 < j["remaining_ms"] <= 5000')" = True ] || fail "remaining time wrong: $(cat "$out")"
[ "$(json_get "$out" 'j["greeting"]')" = hi ] || fail "environment variable not visible"
[ "$(json_get "$out" 'j["task_root"]')" = /var/task ] || fail "LAMBDA_TASK_ROOT wrong"
# The OOM killer must pick the function's processes, never the runner (PID 1) that is the container.
[ "$(json_get "$out" 'j["oom_score_adj"]')" = 1000 ] || fail "the function's oom_score_adj: $(cat "$out")"
[ "$(json_get "$out" 'int(j["runner_oom_score_adj"]) <= 0')" = True ] || fail "the runner's oom_score_adj: $(cat "$out")"
curl -fsS "$EF_BASE/v1/runtimes" >"$out"
[ "$(json_get "$out" 'len(j["containers"]) if isinstance(j, dict) else len(j)')" = 1 ] \
  || fail "expected exactly one container after four warm calls: $(cat "$out")"
# funclet's pool spares start a Python runtime ahead (--prestart python, the default): the
# cold start was handed the waiting one, with the function's environment (checked above).
grep -q "(started ahead) given for function counter" "$EF_DATA/funclet.log" ||
  fail "the cold start did not use a runtime started ahead: $(grep -i "runtime" "$EF_DATA/funclet.log" | tail -5)"

note "the Timeout counts from the hand-out: a 2 s import does not use up a 1 s Timeout"
mkdir -p "$EF_DATA/slowinit"
cat >"$EF_DATA/slowinit/app.py" <<'PYEOF'
import time

time.sleep(2)


def handler(event, context):
    return {"remaining_ms": context.get_remaining_time_in_millis()}
PYEOF
[ "$(create_function slowinit python3.11 app.handler "$EF_DATA/slowinit" ',"Timeout":1')" = 201 ] ||
  fail "create slowinit: $(cat "$EF_DATA/create-slowinit.json")"
code=$(curl -sS -o "$out" -w '%{http_code}' -X POST "$EF_BASE/2015-03-31/functions/slowinit/invocations" -d '{}')
[ "$code" = 200 ] && [ "$(json_get "$out" '500 < j["remaining_ms"] <= 1000')" = True ] ||
  fail "a slow import with Timeout 1 gave $code: $(cat "$out")"

note "... and the Timeout still ends a cold start's first invocation: a 4 s handler, Timeout 1"
mkdir -p "$EF_DATA/slowcall"
cat >"$EF_DATA/slowcall/app.py" <<'PYEOF'
import time


def handler(event, context):
    time.sleep(4)
    return {"slept": 4}
PYEOF
[ "$(create_function slowcall python3.11 app.handler "$EF_DATA/slowcall" ',"Timeout":1')" = 201 ] ||
  fail "create slowcall: $(cat "$EF_DATA/create-slowcall.json")"
start=$(date +%s%N)
code=$(curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST \
  "$EF_BASE/2015-03-31/functions/slowcall/invocations" -d '{}')
took_ms=$((($(date +%s%N) - start) / 1000000))
[ "$code" = 200 ] && grep -qi '^x-amz-function-error: Unhandled' "$out.h" &&
  grep -q 'Task timed out after 1.00 seconds' "$out" ||
  fail "a cold 4 s call under Timeout 1 gave $code: $(cat "$out")"
grep -qi '^x-amz-executed-version: \$LATEST' "$out.h" || fail "a timeout without X-Amz-Executed-Version"
# Timed out well before the handler could have returned (4 s).
[ "$took_ms" -lt 3500 ] || fail "the cold call timed out only after $took_ms ms"

note "the same function through the EasyFaaS-style path"
code=$(curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST "$EF_BASE/v1/functions/counter/invocations" -d '{}')
[ "$code" = 200 ] && [ "$(json_get "$out" 'j["count"]')" = 5 ] || fail "/v1 invoke: $code $(cat "$out")"
grep -qi '^x-amz-executed-version: \$LATEST' "$out.h" || fail "/v1 invoke without X-Amz-Executed-Version"

note "log tail"
curl -sS -D "$out.h" -o "$out" -X POST -H 'X-Amz-Log-Type: Tail' \
  "$EF_BASE/2015-03-31/functions/counter/invocations" -d '{}'
log=$(grep -i '^x-amz-log-result:' "$out.h" | cut -d' ' -f2 | tr -d '\r' | base64 -d)
grep -q '^START RequestId: ' <<<"$log" || fail "log tail lacks START: $log"
grep -q 'counter at 6 for ' <<<"$log" || fail "log tail lacks the function's output: $log"
grep -q '^REPORT RequestId: ' <<<"$log" || fail "log tail lacks REPORT: $log"

note "a function error is 200 with X-Amz-Function-Error"
[ "$(create_function failing python3.11 app.handler "$fns/failing")" = 201 ] || fail "create failing"
curl -sS -D "$out.h" -o "$out" -X POST "$EF_BASE/2015-03-31/functions/failing/invocations" -d '{}'
head -1 "$out.h" | grep -q ' 200' || fail "function error status: $(head -1 "$out.h")"
grep -qi '^x-amz-function-error: Unhandled' "$out.h" || fail "no X-Amz-Function-Error header"
[ "$(json_get "$out" 'j["errorType"]')" = ValueError ] || fail "errorType: $(cat "$out")"
[ "$(json_get "$out" 'j["errorMessage"]')" = "the event was not to my liking" ] || fail "errorMessage: $(cat "$out")"

note "unknown function is 404 ResourceNotFoundException"
curl -sS -D "$out.h" -o "$out" -X POST "$EF_BASE/2015-03-31/functions/nope/invocations" -d '{}'
head -1 "$out.h" | grep -q ' 404' || fail "unknown function: $(head -1 "$out.h")"
grep -qi '^x-amzn-errortype: ResourceNotFoundException' "$out.h" || fail "no x-amzn-ErrorType"

note "stop and check nothing is left"
runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
[ -n "$runner_pids" ] || fail "funclet lists no containers"
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
