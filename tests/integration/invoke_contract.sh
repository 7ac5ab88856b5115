#!/usr/bin/env bash
# What a caller gets back through a real pod where the function, not the platform, is at fault or
# out of the ordinary:
#  - a provided.al2023 function without a bootstrap, and one whose bootstrap is not executable:
#    Lambda's 200 + X-Amz-Function-Error: Unhandled + Runtime.InvalidEntrypoint (logged), no
#    container kept, and the pod serving on;
#  - a response body that is not text (3,000,000 bytes of 0x01, and every byte value, NUL
#    included) posted by a custom runtime with curl --data-binary: back byte for byte, and from
#    an Event as a result kept by size only (docs/async.md);
#  - a Python module that sleeps 2 s at import: REPORT puts that in Init Duration, not Duration.
source "$(dirname "$0")/lib.sh"
require_root
command -v curl >/dev/null || { echo "SKIP: curl is not installed (the bootstraps need it)" >&2; exit 77; }
require_built easyfaas-controller easyfaas-funclet easyfaas-runner ef-rpc-call
pod_start
out=$EF_DATA/out

# invoke NAME [CURL ARGS...]: invokes with Tail logs into $out / $out.h; prints the HTTP status.
invoke() {
  local name=$1
  shift
  curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST -H 'X-Amz-Log-Type: Tail' \
    "$EF_BASE/2015-03-31/functions/$name/invocations" "$@"
}

# tail_log: the decoded X-Amz-Log-Result of the last invocation.
tail_log() {
  grep -i '^x-amz-log-result:' "$out.h" | cut -d' ' -f2 | tr -d '\r' | base64 -d
}

# containers: how many containers the controller holds.
containers() {
  curl -fsS "$EF_BASE/v1/runtimes" >"$out.rt"
  json_get "$out.rt" 'len(j["containers"]) if isinstance(j, dict) else len(j)'
}

# expect_invalid_entrypoint NAME MESSAGE: the invocation is the function's error, as Lambda's.
expect_invalid_entrypoint() {
  local name=$1 message=$2 code rid
  code=$(invoke "$name" -d '{}')
  [ "$code" = 200 ] || fail "$name gave HTTP $code: $(cat "$out")"
  grep -qi '^x-amz-function-error: Unhandled' "$out.h" || fail "$name: no X-Amz-Function-Error: $(cat "$out.h")"
  rid=$(grep -i '^x-amzn-requestid:' "$out.h" | cut -d' ' -f2 | tr -d '\r')
  [ "$(json_get "$out" 'j["errorType"]')" = Runtime.InvalidEntrypoint ] || fail "$name: $(cat "$out")"
  [ "$(json_get "$out" 'j["errorMessage"]')" = "RequestId: $rid Error: $message" ] ||
    fail "$name: $(cat "$out")"
  tail_log | grep -qF "Error: $message" || fail "$name: the log lacks the error: $(tail_log)"
  tail_log | grep -q $'^REPORT .*\tStatus: error\tError Type: Runtime.InvalidEntrypoint' ||
    fail "$name: REPORT: $(tail_log)"
}

note "a provided function without a bootstrap, and one whose bootstrap cannot be executed"
mkdir -p "$EF_DATA/noboot" "$EF_DATA/noexec"
echo 'handler () { echo ok; }' >"$EF_DATA/noboot/function.sh"
cp "$EF_SOURCE_DIR/tests/integration/functions/provided_tutorial/"* "$EF_DATA/noexec/"
chmod 0644 "$EF_DATA/noexec/bootstrap"
[ "$(create_function noboot provided.al2023 function.handler "$EF_DATA/noboot")" = 201 ] ||
  fail "create noboot: $(cat "$EF_DATA/create-noboot.json")"
[ "$(create_function noexec provided.al2023 function.handler "$EF_DATA/noexec")" = 201 ] ||
  fail "create noexec: $(cat "$EF_DATA/create-noexec.json")"
for _ in 1 2; do
  expect_invalid_entrypoint noboot "Couldn't find valid bootstrap(s): [/var/task/bootstrap]"
  expect_invalid_entrypoint noexec "fork/exec /var/task/bootstrap: permission denied"
done
# Not one of those containers is kept for a next invocation.
for _ in $(seq 50); do
  [ "$(containers)" = 0 ] && break
  sleep 0.1
done
[ "$(containers)" = 0 ] || fail "containers kept after failed starts: $(cat "$out.rt")"
grep -q "Runtime.InvalidEntrypoint" "$EF_DATA/controller.log" || fail "the controller did not log the error"

note "binary response bodies from a custom runtime"
mkdir -p "$EF_DATA/bin"
cat >"$EF_DATA/bin/bootstrap" <<'SHEOF'
#!/bin/sh
# Answers each event with the bytes it names: "ones" (3,000,000 of 0x01), "all" (every byte
# value twice, NUL included), or "error" (every byte value, posted as the function's error).
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/next")
  id=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$headers" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$headers"
  case "$event" in
    *ones*) head -c 3000000 /dev/zero | tr '\0' '\1' |
      curl -sS -o /dev/null --data-binary @- "$api/$id/response" ;;
    *error*) curl -sS -o /dev/null --data-binary "@$LAMBDA_TASK_ROOT/all1" "$api/$id/error" ;;
    *) cat "$LAMBDA_TASK_ROOT/all1" "$LAMBDA_TASK_ROOT/all1" | curl -sS -o /dev/null --data-binary @- "$api/$id/response" ;;
  esac
done
SHEOF
chmod 0755 "$EF_DATA/bin/bootstrap"
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)))' >"$EF_DATA/bin/all1"
[ "$(create_function bin provided.al2023 function.handler "$EF_DATA/bin")" = 201 ] ||
  fail "create bin: $(cat "$EF_DATA/create-bin.json")"
head -c 3000000 /dev/zero | tr '\0' '\1' >"$EF_DATA/ones"
cat "$EF_DATA/bin/all1" "$EF_DATA/bin/all1" >"$EF_DATA/all"
code=$(invoke bin -d '"ones"')
[ "$code" = 200 ] || fail "3,000,000 bytes of 0x01 gave HTTP $code: $(head -c 300 "$out")"
! grep -qi '^x-amz-function-error:' "$out.h" || fail "3,000,000 bytes of 0x01 failed: $(head -c 300 "$out")"
cmp "$out" "$EF_DATA/ones" || fail "3,000,000 bytes of 0x01 did not come back as they were"
code=$(invoke bin -d '"all"')
[ "$code" = 200 ] && cmp "$out" "$EF_DATA/all" || fail "every byte value: HTTP $code, $(od -c "$out" | head -3)"
tail_log | grep -q '^REPORT RequestId: ' || fail "the log tail of a binary answer: $(tail_log)"
# A body posted to /error that is not a JSON document is the runner's to shape (it makes the
# error document of it, rapi/runtime_api.c); the caller gets a function error either way.
code=$(invoke bin -d '"error"')
[ "$code" = 200 ] && grep -qi '^x-amz-function-error: Unhandled' "$out.h" ||
  fail "a binary error document: HTTP $code, $(od -c "$out" | head -3)"
[ "$(containers)" = 1 ] || fail "the binary answers did not come from one warm container: $(cat "$out.rt")"

note "an Event's binary result is kept by its size"
curl -sS -D "$out.h" -o "$out" -X POST -H 'X-Amz-Invocation-Type: Event' \
  "$EF_BASE/2015-03-31/functions/bin/invocations" -d '"all"'
rid=$(grep -i '^x-amzn-requestid:' "$out.h" | cut -d' ' -f2 | tr -d '\r')
for _ in $(seq 100); do
  curl -fsS "$EF_BASE/v1/invocations/$rid" >"$out"
  [ "$(json_get "$out" 'j["Status"]')" = succeeded ] && break
  sleep 0.1
done
[ "$(json_get "$out" '(j["Status"], j["Result"], j["ResultSize"])')" = "('succeeded', None, 512)" ] ||
  fail "the Event's status: $(cat "$out")"

note "a 2 s import is Init Duration, not Duration"
mkdir -p "$EF_DATA/slowinit"
cat >"$EF_DATA/slowinit/app.py" <<'PYEOF'
import time

time.sleep(2)


def handler(event, context):
    return {"ok": True}
PYEOF
[ "$(create_function slowinit python3.11 app.handler "$EF_DATA/slowinit")" = 201 ] ||
  fail "create slowinit: $(cat "$EF_DATA/create-slowinit.json")"
for call in cold warm; do
  code=$(invoke slowinit -d '{}')
  [ "$code" = 200 ] || fail "slowinit ($call) gave HTTP $code: $(cat "$out")"
  tail_log | grep '^REPORT ' >"$out.report" || fail "no REPORT: $(tail_log)"
  /usr/bin/python3 - "$out.report" "$call" <<'PYEOF' || fail "slowinit ($call): $(cat "$out.report")"
import re, sys
rep, call = open(sys.argv[1]).read(), sys.argv[2]
field = lambda name: re.search(r"\t%s: ([0-9.]+) ms" % name, rep)
duration, billed, init = field("Duration"), field("Billed Duration"), field("Init Duration")
assert float(duration.group(1)) < 1000, "Duration holds the import"
assert int(billed.group(1)) == max(1, -(-float(duration.group(1)) // 1)), "Billed Duration"
if call == "cold":
    assert init and float(init.group(1)) >= 2000, "Init Duration lacks the import"
else:
    assert not init, "Init Duration on a warm call"
PYEOF
done

note "stop and check nothing is left"
runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
