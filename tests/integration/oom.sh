#!/usr/bin/env bash
# Lambda's Runtime.OutOfMemory through a real pod: a Python function of MemorySize 128 that
# fills ~400 MB is killed by the kernel's OOM killer in its container's memory cgroup; the
# controller pairs the runner's answer ("signal: killed") with funclet's container.oom and
# answers errorType Runtime.OutOfMemory with X-Amz-Function-Error: Unhandled, and logs it. The
# next invocation gets a fresh container and works. A runtime killed by a SIGKILL that is not
# the OOM killer's stays Runtime.ExitError.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
pod_start
out=$EF_DATA/out

mkdir -p "$EF_DATA/fn"
cat >"$EF_DATA/fn/hog.py" <<'PYEOF'
import os
import signal


def handler(event, context):
    if event.get("kill"):
        print("killing myself")
        os.kill(os.getpid(), signal.SIGKILL)
    if event.get("mb"):
        print("allocating", event["mb"], "MB")
        chunks = []
        for _ in range(event["mb"] // 10):
            chunks.append(b"x" * (10 << 20))  # written, so the pages are charged
        return len(chunks)
    return {"ok": True, "pid": os.getpid()}
PYEOF
chmod -R a+rX "$EF_DATA/fn"
[ "$(create_function hog python3.11 hog.handler "$EF_DATA/fn" ',"MemorySize":128,"Timeout":30')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-hog.json")"

# invoke_tail NAME EVENT: invokes with X-Amz-Log-Type: Tail; headers in $EF_DATA/h, body in $out,
# the decoded log tail in $EF_DATA/tail.
invoke_tail() {
  curl -sS -D "$EF_DATA/h" -o "$out" -X POST -H 'X-Amz-Log-Type: Tail' \
    "$EF_BASE/2015-03-31/functions/$1/invocations" -d "$2" >/dev/null
  grep -i '^x-amz-log-result:' "$EF_DATA/h" | cut -d' ' -f2 | tr -d '\r' | base64 -d >"$EF_DATA/tail"
}

note "a warm container first, so that the OOM meets a container that has served"
[ "$(invoke hog '{}')" = 200 ] || fail "warm-up: $(cat "$out")"
ID=$(pool_ids hog)
[ -n "$ID" ] || fail "no container"

note "400 MB in a 128 MB function: Runtime.OutOfMemory"
invoke_tail hog '{"mb": 400}'
head -n1 "$EF_DATA/h" | grep -q ' 200' || fail "status: $(head -n1 "$EF_DATA/h")"
grep -qi '^x-amz-function-error: Unhandled' "$EF_DATA/h" || fail "no X-Amz-Function-Error: $(cat "$EF_DATA/h")"
rid=$(grep -i '^x-amzn-requestid:' "$EF_DATA/h" | cut -d' ' -f2 | tr -d '\r')
[ "$(json_get "$out" 'j["errorType"]')" = Runtime.OutOfMemory ] || fail "errorType: $(cat "$out")"
[ "$(json_get "$out" 'j["errorMessage"]')" = "RequestId: $rid Error: Runtime exited with error: signal: killed" ] ||
  fail "errorMessage: $(cat "$out")"
grep -q "allocating 400 MB" "$EF_DATA/tail" || fail "the output before the kill is not in the log: $(cat "$EF_DATA/tail")"
grep -q "^RequestId: $rid Error: Runtime exited with error: signal: killed$" "$EF_DATA/tail" ||
  fail "the log does not say how the runtime ended: $(cat "$EF_DATA/tail")"
grep -qx "Runtime.OutOfMemory" "$EF_DATA/tail" || fail "the log does not name the error: $(cat "$EF_DATA/tail")"
grep -q "Memory Size: 128 MB.*Max Memory Used: 128 MB.*Status: error.*Error Type: Runtime.OutOfMemory" "$EF_DATA/tail" ||
  fail "REPORT: $(cat "$EF_DATA/tail")"
grep -q "invocation $rid of hog ran out of memory" "$EF_DATA/controller.log" || fail "no log line of the OOM"

note "the next invocation works, in a fresh container"
wait_for 10 "the OOM-killed container to go" eval '! funclet_has '"$ID"
[ "$(invoke hog '{}')" = 200 ] || fail "after the OOM: $(cat "$out")"
[ "$(json_get "$out" 'j["ok"]')" = True ] || fail "after the OOM: $(cat "$out")"
NEW=$(pool_ids hog)
[ -n "$NEW" ] && [ "$NEW" != "$ID" ] || fail "the call after the OOM did not get a fresh container ($NEW)"

note "a SIGKILL that is not the OOM killer's stays Runtime.ExitError"
invoke_tail hog '{"kill": true}'
grep -qi '^x-amz-function-error: Unhandled' "$EF_DATA/h" || fail "no X-Amz-Function-Error: $(cat "$EF_DATA/h")"
[ "$(json_get "$out" 'j["errorType"]')" = Runtime.ExitError ] || fail "errorType: $(cat "$out")"
json_get "$out" 'j["errorMessage"]' | grep -q 'Runtime exited with error: signal: killed$' ||
  fail "errorMessage: $(cat "$out")"
grep -qx "Runtime.ExitError" "$EF_DATA/tail" || fail "the log does not name the error: $(cat "$EF_DATA/tail")"
[ "$(invoke hog '{}')" = 200 ] || fail "after the kill: $(cat "$out")"

note "a function that stays below its memory is unaffected"
[ "$(invoke hog '{"mb": 40}')" = 200 ] && [ "$(cat "$out")" = 4 ] || fail "40 MB: $(cat "$out")"

pod_stop
echo "PASS: oom"
