#!/usr/bin/env bash
# The Node.js runtime through the whole pod: nodejs20.x functions created from zips and invoked
# with curl, in every handler style Lambda accepts (async, promise, callback, ES module, a
# handler below subdirectories), with Lambda's error documents for function errors and init
# failures, the context object, console output in the log tail, unicode and a 1 MB payload,
# and warm reuse of one container.
source "$(dirname "$0")/lib.sh"
require_root
[ -x /usr/bin/node ] || [ -n "$(command -v node)" ] || { echo "SKIP: Node.js is not installed" >&2; exit 77; }
pod_start
fns=$EF_SOURCE_DIR/tests/integration/functions
out=$EF_DATA/out

# new_fn NAME DIR HANDLER [EXTRA_JSON]: creates a nodejs20.x function or fails.
new_fn() {
  local status
  status=$(create_function "$1" nodejs20.x "$3" "$2" "${4:-}")
  [ "$status" = 201 ] || fail "CreateFunction $1 gave $status: $(cat "$EF_DATA/create-$1.json")"
}

# invoke NAME [BODY_OR_@FILE] [CURL_ARGS...]: the response body in $out, headers in $out.h;
# prints the HTTP status.
invoke() {
  local name=$1 body=${2:-'{}'}
  shift 2 || shift $#
  curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST "$@" \
    "$EF_BASE/2015-03-31/functions/$name/invocations" --data-binary "$body"
}

header() {
  grep -i "^$1:" "$out.h" | cut -d' ' -f2- | tr -d '\r'
}

# expect_ok NAME [BODY]: invokes and requires 200 without a function error.
expect_ok() {
  local code
  code=$(invoke "$@")
  [ "$code" = 200 ] || fail "$1 gave HTTP $code: $(cat "$out")"
  [ -z "$(header X-Amz-Function-Error)" ] || fail "$1 failed: $(cat "$out")"
}

# expect_error NAME TYPE MESSAGE_REGEX: a function error, 200 with X-Amz-Function-Error.
expect_error() {
  local code
  code=$(invoke "$1" '{}')
  [ "$code" = 200 ] || fail "$1: a function error gave HTTP $code: $(cat "$out")"
  [ "$(header X-Amz-Function-Error)" = Unhandled ] || fail "$1: no X-Amz-Function-Error: $(cat "$out")"
  [ "$(json_get "$out" 'j["errorType"]')" = "$2" ] || fail "$1: errorType is not $2: $(cat "$out")"
  local message
  message=$(json_get "$out" 'j["errorMessage"]')
  grep -Eq "$3" <<<"$message" || fail "$1: errorMessage does not match '$3': $(cat "$out")"
}

note "create the functions"
new_fn node-async "$fns/node_styles" app.asyncHandler \
  ',"MemorySize":192,"Timeout":7,"Environment":{"Variables":{"GREETING":"hi"}}'
for h in promiseHandler callbackHandler callbackNoWait callbackError legacySucceed syncNothing \
  throwing rejecting throwString circular context logging echo nested.inner notAFunction \
  unhandledRejection nothere; do
  new_fn "node-$(tr '.' '-' <<<"$h")" "$fns/node_styles" "app.$h" ',"Timeout":10'
done
new_fn node-deep "$fns/node_styles" src/handlers/deep.handler
new_fn node-esm "$fns/node_esm" app.handler
new_fn node-type-module "$fns/node_module_type" index.handler
new_fn node-no-module "$fns/node_styles" nosuchfile.handler
new_fn node-syntax "$fns/node_broken" syntax.handler
new_fn node-missing-dep "$fns/node_broken" needs_missing.handler
new_fn node-init-throws "$fns/node_broken" throws_at_init.handler
new_fn node-flood "$fns/node_logging" app.flood ',"Timeout":60'
new_fn node-control-type "$fns/node_logging" app.controlType

note "async handler, and warm reuse: the module-level counter grows in one container"
pids=()
for i in 1 2 3; do
  expect_ok node-async "{\"n\": $i}"
  [ "$(json_get "$out" 'j["style"]')" = async ] || fail "async handler: $(cat "$out")"
  [ "$(json_get "$out" 'j["event"]["n"]')" = "$i" ] || fail "event not passed: $(cat "$out")"
  [ "$(json_get "$out" 'j["count"]')" = "$i" ] || fail "call $i did not reuse the warm container: $(cat "$out")"
  pids+=("$(json_get "$out" 'j["pid"]')")
done
[ "${pids[0]}" = "${pids[2]}" ] || fail "the runtime process changed between warm calls: ${pids[*]}"
[ "$(json_get "$out" 'j["uid"]')" != 0 ] || fail "the function runs as root"

note "promise-returning, callback and legacy handlers"
expect_ok node-promiseHandler '{"p": true}'
[ "$(json_get "$out" 'j["style"], j["event"]["p"]')" = "('promise', True)" ] || fail "promise: $(cat "$out")"
expect_ok node-callbackHandler
[ "$(json_get "$out" 'j["style"]')" = callback ] || fail "callback: $(cat "$out")"
# callbackWaitsForEmptyEventLoop (default true): the result goes out after the 50 ms timer ran.
[ "$(json_get "$out" 'j["timerRan"]')" = True ] || fail "callback result sent before the event loop was empty: $(cat "$out")"
expect_ok node-callbackNoWait
[ "$(json_get "$out" 'j["style"]')" = callback-no-wait ] || fail "callbackWaitsForEmptyEventLoop=false: $(cat "$out")"
expect_ok node-legacySucceed
[ "$(json_get "$out" 'j["style"]')" = succeed ] || fail "context.succeed: $(cat "$out")"
expect_ok node-syncNothing
[ "$(cat "$out")" = null ] || fail "a handler that neither returns a promise nor calls back must give null: $(cat "$out")"
expect_ok node-nested-inner
[ "$(cat "$out")" = '"nested export"' ] || fail "nested export path: $(cat "$out")"

note "ES modules and a handler below subdirectories"
expect_ok node-esm '{"e": 1}'
[ "$(json_get "$out" 'j["esm"], j["count"]')" = "(True, 1)" ] || fail ".mjs handler: $(cat "$out")"
[ "$(json_get "$out" 'len(j["sha"])')" = 64 ] || fail ".mjs handler: $(cat "$out")"
expect_ok node-esm '{"e": 1}'
[ "$(json_get "$out" 'j["count"]')" = 2 ] || fail ".mjs handler not warm: $(cat "$out")"
expect_ok node-type-module
[ "$(json_get "$out" 'j["esm"], j["kind"]')" = "(True, 'type-module')" ] || fail '"type": "module" package: '"$(cat "$out")"
expect_ok node-deep
[ "$(json_get "$out" 'j["file"]')" = src/handlers/deep.js ] || fail "handler in a subdirectory: $(cat "$out")"

note "function errors: 200, X-Amz-Function-Error, Lambda's document"
expect_error node-throwing ValidationError '^the event was not to my liking$'
[ "$(json_get "$out" 'j["trace"][0]')" = "ValidationError: the event was not to my liking" ] \
  || fail "trace of a thrown error: $(cat "$out")"
[[ "$(json_get "$out" 'j["trace"][1]')" == *"/var/task/app.js:"* ]] || fail "trace lacks the handler's frame: $(cat "$out")"
expect_error node-rejecting RangeError '^out of range$'
expect_error node-callbackError TypeError '^bad callback input$'
expect_error node-throwString string '^just a string$'
expect_error node-circular Runtime.MarshalError 'circular structure'
expect_error node-unhandledRejection Runtime.UnhandledPromiseRejection 'nobody catches me'
# The runtime exits after an unhandled rejection, as in Lambda; later calls get a fresh one.
# A call that races with the exit may still meet the dead runtime (Runtime.ExitError); by the
# next one the pod must have replaced it.
for attempt in 1 2; do
  code=$(invoke node-unhandledRejection '{}')
  type=$(json_get "$out" 'j.get("errorType")')
  [ "$type" = Runtime.ExitError ] && [ $attempt = 1 ] && continue
  [ "$code" = 200 ] && [ "$type" = Runtime.UnhandledPromiseRejection ] \
    || fail "after an unhandled rejection the function did not start again: $code $(cat "$out")"
  break
done

note "init failures"
expect_error node-no-module Runtime.ImportModuleError "^Error: Cannot find module 'nosuchfile'"
expect_error node-missing-dep Runtime.ImportModuleError "^Error: Cannot find module 'no-such-package'"
expect_error node-nothere Runtime.HandlerNotFound '^app\.nothere is undefined or not exported$'
expect_error node-notAFunction Runtime.HandlerNotFound '^app\.notAFunction is not a function$'
expect_error node-syntax Runtime.UserCodeSyntaxError '^SyntaxError: '
expect_error node-init-throws Error '^cannot start without configuration$'

note "context object"
expect_ok node-context
ctx=$(cat "$out")
check_ctx() {
  [ "$(json_get "$out" "$1")" = "$2" ] || fail "context: $1 is $(json_get "$out" "$1"), not $2: $ctx"
}
check_ctx 'j["functionName"]' node-context
check_ctx 'j["functionVersion"]' '$LATEST'
check_ctx 'j["memoryLimitInMB"]' 128
check_ctx 'type(j["memoryLimitInMB"]).__name__' str
check_ctx 'j["logGroupName"]' /aws/lambda/node-context
check_ctx 'j["invokedFunctionArn"].endswith(":function:node-context")' True
check_ctx 'len(j["awsRequestId"]) > 0' True
check_ctx 'bool(j["logStreamName"])' True
check_ctx '0 < j["remaining"] <= 10000' True
check_ctx 'j["callbackWaitsForEmptyEventLoop"]' True
check_ctx 'j["env"]["handler"]' app.context
check_ctx 'j["env"]["taskRoot"]' /var/task
check_ctx 'j["env"]["executionEnv"]' AWS_Lambda_nodejs20.x
check_ctx 'j["env"]["traceId"].startswith("Root=")' True
rid=$(header X-Amzn-RequestId)
[ -z "$rid" ] || check_ctx 'j["awsRequestId"]' "$rid"

note "console output in the log tail"
code=$(invoke node-logging '{}' -H 'X-Amz-Log-Type: Tail')
[ "$code" = 200 ] || fail "logging: $code $(cat "$out")"
rid=$(json_get "$out" 'j')
log=$(header X-Amz-Log-Result | base64 -d)
tab=$'\t'
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
grep -Eq "^$iso$tab$rid${tab}INFO${tab}hello from console.log \{ n: 1 \}$" <<<"$log" \
  || fail "console.log line not in Lambda's format: $log"
grep -Eq "^$iso$tab$rid${tab}INFO${tab}an info line$" <<<"$log" || fail "console.info: $log"
grep -Eq "^$iso$tab$rid${tab}WARN${tab}a warning$" <<<"$log" || fail "console.warn: $log"
grep -Eq "^$iso$tab$rid${tab}ERROR${tab}an error line$" <<<"$log" || fail "console.error: $log"
grep -q '^START RequestId: ' <<<"$log" && grep -q '^REPORT RequestId: ' <<<"$log" \
  || fail "log tail lacks START/REPORT: $log"
code=$(invoke node-throwing '{}' -H 'X-Amz-Log-Type: Tail')
log=$(header X-Amz-Log-Result | base64 -d)
grep -q "ERROR${tab}Invoke Error ${tab}{\"errorType\":\"ValidationError\"" <<<"$log" \
  || fail "a function error is not logged as Lambda logs it: $log"

# check_flood RID N: the function log's entry of invocation RID ends with "line N" right before
# its END line, and the lines it kept (the runner keeps the last 64 KiB) are consecutive.
check_flood() {
  curl -fsS -o "$out.log" "$EF_BASE/v1/functions/node-flood/logs?tail=5000" || fail "cannot read the log"
  /usr/bin/python3 - "$out.log" "$1" "$2" <<'PY' || fail "flood of $2 lines: the log of $1 is wrong"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read().split("\n")
rid, n = sys.argv[2], int(sys.argv[3])
end = text.index("END RequestId: " + rid)
numbers = []
for line in reversed(text[:end]):
    m = re.search(r"(?:^|\t)line (\d+) x{70}$", line)
    if not m:
        break
    numbers.append(int(m.group(1)))
numbers.reverse()
if not numbers or numbers[-1] != n or numbers != list(range(numbers[0], n + 1)) or len(numbers) < min(n, 300):
    sys.exit("%d lines before END, the last %s: %s" % (len(numbers), numbers[-1:], text[end - 3:end + 1]))
PY
}

note "a flood of output: every line is out, in order, before the response is posted"
for how in console stdout mixed; do
  code=$(invoke node-flood "{\"lines\": 20000, \"how\": \"$how\"}" -H 'X-Amz-Log-Type: Tail')
  [ "$code" = 200 ] && [ -z "$(header X-Amz-Function-Error)" ] || fail "flood ($how): $code $(cat "$out")"
  rid=$(header X-Amzn-RequestId)
  log=$(header X-Amz-Log-Result | base64 -d)
  last=$(grep -B1 "^END RequestId: $rid" <<<"$log" | head -n 1)
  grep -Eq "(^|$tab)line 20000 x{70}\$" <<<"$last" \
    || fail "flood ($how): the tail does not end with line 20000 before END: $(tail -n 4 <<<"$log")"
  check_flood "$rid" 20000
done
# 200000 lines (20 MB) at 128 MB: output queued in memory would exhaust the heap.
code=$(invoke node-flood '{"lines": 200000}')
[ "$code" = 200 ] && [ -z "$(header X-Amz-Function-Error)" ] || fail "flood of 200000 lines: $code $(cat "$out")"
check_flood "$(header X-Amzn-RequestId)" 200000
expect_ok node-flood '{"lines": 3}'
rid=$(header X-Amzn-RequestId)
check_flood "$rid" 3

note "an error type with a control character is answered at once, not at the deadline"
start=$(date +%s%N)
expect_error node-control-type 'Bad'$'\x01''Type' '^ctl$'
elapsed=$((($(date +%s%N) - start) / 1000000))
[ "$elapsed" -lt 2000 ] || fail "the error took $elapsed ms"

note "unicode and a 1 MB payload round trip"
expect_ok node-echo '{"text": "héllo wörld ✓ 😀 中文"}'
[ "$(json_get "$out" 'j["event"]["text"]')" = "héllo wörld ✓ 😀 中文" ] || fail "unicode mangled: $(cat "$out")"
/usr/bin/python3 -c 'import json,sys; json.dump({"blob": "é✓" * 209715, "n": 1}, open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))' "$EF_DATA/big.json"
size=$(stat -c %s "$EF_DATA/big.json")
[ "$size" -gt 1000000 ] || fail "the test payload is only $size bytes"
expect_ok node-echo @"$EF_DATA/big.json"
[ "$(json_get "$out" 'j["bytes"]')" = "$size" ] || fail "1 MB payload: Node saw $(json_get "$out" 'j["bytes"]') bytes, not $size"
/usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))["event"]; sys.exit(a != b)' \
  "$EF_DATA/big.json" "$out" || fail "1 MB payload did not round-trip"

note "stop and check nothing is left"
runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
