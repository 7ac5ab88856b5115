#!/usr/bin/env bash
# The same behaviours of Lambda, checked for each kind of runtime through the whole pod: the
# bundled Python and Node.js runtimes and a custom runtime written in bash and curl
# (provided.al2023). For each: a result, a thrown error, an init error, a crash by exit and by
# SIGKILL, a timeout, a 5 MB event and a 5 MB result, a result above Lambda's limit, unicode,
# results that are not JSON objects (a string, a number, null), environment variables, the
# context (or the /next headers for the custom runtime), the client context, the remaining time
# shrinking across a sleep, and orphaned grandchildren reaped. After a crash or a timeout the
# container is gone (no process, no cgroup) and the next invocation works.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runtime_lib.sh"
require_root
command -v curl >/dev/null || { echo "SKIP: curl is not installed" >&2; exit 77; }
have_node=1
[ -x /usr/bin/node ] || command -v node >/dev/null || have_node=0
pod_start
out=$EF_DATA/out
src=$EF_DATA/src
mkdir -p "$src/python/pkg/sub" "$src/python_broken" "$src/node" "$src/node_broken" "$src/shell"

# ---- the functions -------------------------------------------------------------------------
cat >"$src/python/app.py" <<'PY'
import hashlib
import json
import os
import signal
import subprocess
import time

NAMES = ["GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "LAMBDA_TASK_ROOT", "_HANDLER",
         "TZ", "AWS_LAMBDA_MAX_CONCURRENCY"]


class BadInput(Exception):
    pass


def handler(event, context):
    a = event.get("action")
    if a == "echo":
        cc = context.client_context
        return {"event": event, "request_id": context.aws_request_id,
                "function_name": context.function_name, "version": context.function_version,
                "arn": context.invoked_function_arn, "memory": context.memory_limit_in_mb,
                "log_group": context.log_group_name, "log_stream": context.log_stream_name,
                "remaining": context.get_remaining_time_in_millis(),
                "env": {n: os.environ.get(n) for n in NAMES},
                "client_context": cc.custom if cc else None,
                "installation_id": cc.client.installation_id if cc and cc.client else None}
    if a == "raise":
        raise BadInput("bad input: %s" % event.get("x"))
    if a == "ctltype":
        # The runtime's Lambda-Runtime-Function-Error-Type header must stay printable.
        raise type("Bad\x01Type", (Exception,), {})("ctl")
    if a == "string":
        return "just text"
    if a == "number":
        return 42.5
    if a == "null":
        return None
    if a == "size":
        blob = event["blob"].encode()
        return {"bytes": len(blob), "sha": hashlib.sha256(blob).hexdigest()}
    if a == "big":
        return "x" * event["n"]
    if a == "sleep":
        before = context.get_remaining_time_in_millis()
        time.sleep(event["s"])
        return [before, context.get_remaining_time_in_millis()]
    if a == "exit":
        print("exiting with 3")
        os._exit(3)
    if a == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if a == "timeout":
        print("going to sleep")
        time.sleep(60)
    if a == "orphan":
        out = subprocess.run(["/bin/sh", "-c", "sleep 0.5 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, check=True)
        return int(out.stdout)
    return {"unknown action": a}
PY
cat >"$src/python/pkg/__init__.py" <<'PY'
PY
cat >"$src/python/pkg/sub/__init__.py" <<'PY'
PY
cat >"$src/python/pkg/sub/deep.py" <<'PY'
def handler(event, context):
    return {"where": __name__}
PY
cat >"$src/python_broken/needs_missing.py" <<'PY'
import nosuchpkg  # noqa: F401


def handler(event, context):
    return 1
PY
cat >"$src/python_broken/syntax.py" <<'PY'
def handler(event, context)
    return 1
PY

cat >"$src/node/app.js" <<'JS'
'use strict';
const crypto = require('crypto');
const { execSync } = require('child_process');
const NAMES = ['GREETING', 'AWS_LAMBDA_FUNCTION_NAME', 'AWS_REGION', 'LAMBDA_TASK_ROOT', '_HANDLER',
  'TZ', 'AWS_LAMBDA_MAX_CONCURRENCY'];
class BadInput extends Error {
  constructor(m) { super(m); this.name = 'BadInput'; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

exports.handler = async (event, context) => {
  const a = event.action;
  if (a === 'echo') {
    const env = {};
    for (const n of NAMES) env[n] = process.env[n] === undefined ? null : process.env[n];
    const cc = context.clientContext;
    return {
      event, request_id: context.awsRequestId, function_name: context.functionName,
      version: context.functionVersion, arn: context.invokedFunctionArn,
      memory: context.memoryLimitInMB, log_group: context.logGroupName,
      log_stream: context.logStreamName, remaining: context.getRemainingTimeInMillis(), env,
      client_context: cc ? cc.custom : null,
      installation_id: cc && cc.client ? cc.client.installation_id : null,
    };
  }
  if (a === 'raise') throw new BadInput(`bad input: ${event.x}`);
  if (a === 'string') return 'just text';
  if (a === 'number') return 42.5;
  if (a === 'null') return null;
  if (a === 'size') {
    const blob = Buffer.from(event.blob, 'utf8');
    return { bytes: blob.length, sha: crypto.createHash('sha256').update(blob).digest('hex') };
  }
  if (a === 'big') return 'x'.repeat(event.n);
  if (a === 'sleep') {
    const before = context.getRemainingTimeInMillis();
    await sleep(event.s * 1000);
    return [before, context.getRemainingTimeInMillis()];
  }
  if (a === 'exit') { console.log('exiting with 3'); process.exit(3); }
  if (a === 'kill') process.kill(process.pid, 'SIGKILL');
  if (a === 'timeout') { console.log('going to sleep'); await sleep(60000); }
  if (a === 'orphan') {
    return Number(execSync('/bin/sh -c "sleep 0.5 >/dev/null 2>&1 & echo \\$!"').toString());
  }
  return { 'unknown action': a };
};
JS
cat >"$src/node_broken/throws.js" <<'JS'
throw new TypeError('cannot start without configuration');
JS

# The custom runtime: bash and curl on the Runtime API, with the handler's actions inline.
cat >"$src/shell/bootstrap" <<'SH'
#!/bin/bash
set -uo pipefail
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
hdr=/tmp/headers.$$
out=/tmp/out.$$
case "$_HANDLER" in
  init.error)
    curl -sS -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.ShellInitError' \
      -d '{"errorMessage":"cannot start: no configuration","errorType":"Runtime.ShellInitError"}' \
      "$api/init/error"
    exit 1 ;;
  init.crash)
    echo "crashing before the first /next" >&2
    exit 4 ;;
esac
# field NAME JSON: the value of a flat string or number member.
field() { sed -n "s/.*\"$1\" *: *\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2" | head -n 1; }
hval() { grep -i "^$1:" "$hdr" | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
now_ms() { date +%s%3N; }
while true; do
  event=$(curl -sS -D "$hdr" "$api/invocation/next") || exit 1
  id=$(hval Lambda-Runtime-Aws-Request-Id)
  deadline=$(hval Lambda-Runtime-Deadline-Ms)
  # The action comes first: looking at the head keeps a 5 MB event cheap.
  action=$(field action "${event:0:100}")
  case "$action" in
    echo)
      cc=$(hval Lambda-Runtime-Client-Context)
      printf '{"request_id":"%s","deadline_ms":%s,"now_ms":%s,"arn":"%s","trace":"%s","client_context":%s,"env":{"GREETING":"%s","AWS_LAMBDA_FUNCTION_NAME":"%s","AWS_REGION":"%s","LAMBDA_TASK_ROOT":"%s","_HANDLER":"%s","TZ":"%s","AWS_LAMBDA_MAX_CONCURRENCY":%s},"event":%s}' \
        "$id" "$deadline" "$(now_ms)" "$(hval Lambda-Runtime-Invoked-Function-Arn)" \
        "$(hval Lambda-Runtime-Trace-Id)" "${cc:-null}" "${GREETING:-}" "$AWS_LAMBDA_FUNCTION_NAME" \
        "$AWS_REGION" "$LAMBDA_TASK_ROOT" "$_HANDLER" "$TZ" \
        "${AWS_LAMBDA_MAX_CONCURRENCY:-null}" "$event" >"$out" ;;
    raise)
      curl -sS -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: BadInput' \
        -d "{\"errorMessage\":\"bad input: $(field x "$event")\",\"errorType\":\"BadInput\",\"stackTrace\":[]}" \
        "$api/invocation/$id/error"
      continue ;;
    string) printf 'just text' >"$out" ;;
    number) printf '42.5' >"$out" ;;
    null) printf 'null' >"$out" ;;
    size)
      printf '{"bytes":%d,"sha":"%s"}' "$(printf %s "$event" | wc -c)" \
        "$(printf %s "$event" | sha256sum | cut -d' ' -f1)" >"$out" ;;
    big) { printf '"'; head -c "$(field n "$event")" /dev/zero | tr '\0' x; printf '"'; } >"$out" ;;
    sleep)
      before=$((deadline - $(now_ms)))
      sleep "$(field s "$event")"
      printf '[%d,%d]' "$before" "$((deadline - $(now_ms)))" >"$out" ;;
    exit) echo "exiting with 3"; exit 3 ;;
    kill) kill -9 $$ ;;
    timeout) echo "going to sleep"; sleep 60 ;;
    orphan) ( sleep 0.5 >/dev/null 2>&1 & echo $! >"$out.pid" ); printf '%s' "$(cat "$out.pid")" >"$out" ;;
    oneshot)
      # Answers, then ends at once: the next invocation must not meet the dead runtime.
      printf '"last words"' >"$out"
      curl -sS -o /dev/null -X POST --data-binary @"$out" "$api/invocation/$id/response"
      exit 0 ;;
    *) printf '{"unknown action":"%s"}' "$action" >"$out" ;;
  esac
  curl -sS -o /dev/null -X POST --data-binary @"$out" "$api/invocation/$id/response"
done
SH
chmod 0755 "$src/shell/bootstrap"

runtimes="python shell"
[ $have_node = 1 ] && runtimes="python node shell"
[ $have_node = 1 ] || note "Node.js is not installed: its part is skipped"

note "create the functions"
mk() {
  local status
  status=$(create_function "$1" "$2" "$3" "$4" "${5:-}")
  [ "$status" = 201 ] || fail "CreateFunction $1 gave $status: $(cat "$EF_DATA/create-$1.json")"
}
common=',"MemorySize":256,"Timeout":4,"Environment":{"Variables":{"GREETING":"hi there"}}'
mk m-python python3.12 app.handler "$src/python" "$common"
mk m-python-deep python3.12 pkg.sub.deep.handler "$src/python"
mk m-python-import python3.12 needs_missing.handler "$src/python_broken"
mk m-python-syntax python3.12 syntax.handler "$src/python_broken"
mk m-python-nohandler python3.12 app.nothere "$src/python"
if [ $have_node = 1 ]; then
  mk m-node nodejs20.x app.handler "$src/node" "$common"
  mk m-node-init nodejs20.x throws.handler "$src/node_broken"
fi
mk m-shell provided.al2023 function.handler "$src/shell" "$common"
mk m-shell-initerror provided.al2023 init.error "$src/shell"
mk m-shell-initcrash provided.al2023 init.crash "$src/shell"
mk m-shell-oneshot provided.al2023 function.handler "$src/shell"

# A 5 MB event: two-byte and three-byte characters, as JSON text.
/usr/bin/python3 -c 'import json,sys; json.dump({"action": "size", "blob": "é✓" * 1000000}, open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))' "$EF_DATA/5mb.json"
size=$(stat -c %s "$EF_DATA/5mb.json")
[ "$size" -gt 5000000 ] || fail "the 5 MB event is only $size bytes"
blob_sha=$(/usr/bin/python3 -c 'import hashlib,json,sys; print(hashlib.sha256(json.load(open(sys.argv[1]))["blob"].encode()).hexdigest())' "$EF_DATA/5mb.json")
blob_bytes=$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["blob"].encode()))' "$EF_DATA/5mb.json")
file_sha=$(sha256sum "$EF_DATA/5mb.json" | cut -d' ' -f1)
cc_json='{"client":{"installation_id":"inst-1"},"custom":{"k":"vé ✓"},"env":{"e":"1"}}'
cc_b64=$(printf %s "$cc_json" | base64 -w0)

for rt in $runtimes; do
  fn=m-$rt
  note "$rt: a result with the context, the environment and the client context"
  expect_ok $fn '{"action":"echo","text":"héllo wörld ✓ 😀 中文"}' -H "X-Amz-Client-Context: $cc_b64"
  rid=$(header X-Amzn-RequestId)
  [ -n "$rid" ] || fail "$rt: no x-amzn-RequestId"
  [ "$(jq_out 'j["event"]["text"]')" = "héllo wörld ✓ 😀 中文" ] || fail "$rt: unicode mangled: $(cat "$out")"
  [ "$(jq_out 'j["request_id"]')" = "$rid" ] || fail "$rt: request id is not the caller's $rid: $(cat "$out")"
  [ "$(jq_out 'j["arn"]')" = "arn:aws:lambda:us-east-1:000000000000:function:$fn" ] || fail "$rt: ARN: $(cat "$out")"
  [ "$(jq_out 'j["env"]["GREETING"]')" = "hi there" ] || fail "$rt: the function's variable: $(cat "$out")"
  [ "$(jq_out 'j["env"]["AWS_LAMBDA_FUNCTION_NAME"], j["env"]["AWS_REGION"], j["env"]["LAMBDA_TASK_ROOT"], j["env"]["TZ"]')" \
    = "('$fn', 'us-east-1', '/var/task', ':UTC')" ] || fail "$rt: Lambda's variables: $(cat "$out")"
  [ "$(jq_out 'j["env"]["_HANDLER"]')" = "$([ $rt = shell ] && echo function.handler || echo app.handler)" ] \
    || fail "$rt: _HANDLER: $(cat "$out")"
  [ "$(jq_out 'j["env"]["AWS_LAMBDA_MAX_CONCURRENCY"]')" = None ] || fail "$rt: concurrency variable set: $(cat "$out")"
  if [ $rt = shell ]; then
    left=$(jq_out 'j["deadline_ms"] - j["now_ms"]')
    [ "$left" -gt 0 ] && [ "$left" -le 4000 ] || fail "$rt: deadline is $left ms away, not within the 4 s timeout"
    [ "$(jq_out 'j["trace"].startswith("Root=1-")')" = True ] || fail "$rt: trace id: $(cat "$out")"
    [ "$(jq_out 'j["client_context"]')" = "$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]))' "$cc_json")" ] \
      || fail "$rt: Lambda-Runtime-Client-Context: $(cat "$out")"
  else
    [ "$(jq_out 'j["function_name"], j["version"], j["memory"], j["log_group"]')" \
      = "('$fn', '\$LATEST', '256', '/aws/lambda/$fn')" ] || fail "$rt: context: $(cat "$out")"
    [ "$(jq_out 'bool(j["log_stream"]) and 0 < j["remaining"] <= 4000')" = True ] || fail "$rt: context: $(cat "$out")"
    [ "$(jq_out 'j["client_context"], j["installation_id"]')" = "({'k': 'vé ✓'}, 'inst-1')" ] \
      || fail "$rt: client context: $(cat "$out")"
  fi

  note "$rt: results that are not JSON objects"
  expect_ok $fn '{"action":"string"}'
  if [ $rt = shell ]; then
    [ "$(cat "$out")" = "just text" ] || fail "$rt: a text result: $(cat "$out")"
  else
    [ "$(cat "$out")" = '"just text"' ] || fail "$rt: a string result: $(cat "$out")"
  fi
  expect_ok $fn '{"action":"number"}'
  [ "$(cat "$out")" = 42.5 ] || fail "$rt: a number result: $(cat "$out")"
  expect_ok $fn '{"action":"null"}'
  [ "$(cat "$out")" = null ] || fail "$rt: a null result: $(cat "$out")"

  note "$rt: a thrown error"
  expect_error $fn '{"action":"raise","x":7}' BadInput '^bad input: 7$'
  if [ $rt = python ]; then
    note "$rt: an exception type with a control character is answered at once"
    t0=$(date +%s%3N)
    expect_error $fn '{"action":"ctltype"}' 'Bad'$'\x01''Type' '^ctl$'
    took=$(($(date +%s%3N) - t0))
    [ "$took" -lt 2000 ] || fail "$rt: the error took $took ms"
  fi

  note "$rt: the remaining time shrinks across a sleep"
  expect_ok $fn '{"action":"sleep","s":1}'
  [ "$(jq_out 'j[0] <= 4000 and 900 <= j[0] - j[1] <= 1600 and j[1] > 0')" = True ] \
    || fail "$rt: remaining time before and after sleeping 1 s: $(cat "$out")"

  note "$rt: a 5 MB event and a 5 MB result"
  expect_ok $fn @"$EF_DATA/5mb.json"
  if [ $rt = shell ]; then
    [ "$(jq_out 'j["bytes"], j["sha"]')" = "($size, '$file_sha')" ] || fail "$rt: the 5 MB event arrived changed: $(cat "$out")"
  else
    [ "$(jq_out 'j["bytes"], j["sha"]')" = "($blob_bytes, '$blob_sha')" ] || fail "$rt: the 5 MB event arrived changed: $(cat "$out")"
  fi
  expect_ok $fn '{"action":"big","n":5000000}'
  [ "$(stat -c %s "$out")" = 5000002 ] || fail "$rt: the 5 MB result is $(stat -c %s "$out") bytes"
  [ "$(head -c 3 "$out")" = '"xx' ] && [ "$(tail -c 2 "$out")" = 'x"' ] || fail "$rt: the 5 MB result is damaged"
  expect_error $fn '{"action":"big","n":7000000}' Function.ResponseSizeTooLarge 'exceeded maximum allowed payload size'

  note "$rt: orphaned grandchildren are reaped"
  before=$(fn_containers $fn)
  [ "$(wc -w <<<"$before")" = 1 ] || fail "$rt: expected one warm container, have: $before"
  expect_ok $fn '{"action":"orphan"}'
  runner=$(runner_pid "$before")
  [ -n "$runner" ] || fail "$rt: funclet does not list container $before"
  sleep 1.5
  for p in $(descendants "$runner"); do
    [ "$(proc_state "$p")" != Z ] || fail "$rt: zombie $p ($(cat /proc/$p/comm)) below the runner"
    grep -qx sleep "/proc/$p/comm" 2>/dev/null && fail "$rt: the orphaned sleep $p is still there"
  done
  expect_ok $fn '{"action":"null"}'
  [ "$(fn_containers $fn)" = "$before" ] || fail "$rt: the container changed after reaping an orphan"

  for how in exit kill; do
    note "$rt: a crash ($how) is Runtime.ExitError, the container goes, the next call works"
    old=$(fn_containers $fn)
    runner=$(runner_pid "$old")
    if [ $how = exit ]; then
      expect_error $fn '{"action":"exit"}' Runtime.ExitError "^RequestId: [0-9a-f-]+ Error: Runtime exited with error: exit status 3$"
    else
      expect_error $fn '{"action":"kill"}' Runtime.ExitError "^RequestId: [0-9a-f-]+ Error: Runtime exited with error: signal: killed$"
    fi
    expect_ok $fn '{"action":"null"}'
    new=$(fn_containers $fn)
    [ -n "$new" ] && [ "$new" != "$old" ] || fail "$rt: the crashed container $old was reused ($new)"
    for _ in $(seq 50); do [ -z "$(runner_pid "$old")" ] && break; sleep 0.1; done
    [ -z "$(runner_pid "$old")" ] || fail "$rt: funclet still lists the crashed container $old"
    [ ! -e "/proc/$runner" ] || [ "$(proc_state "$runner")" = Z ] || fail "$rt: the crashed container's runner $runner still runs"
  done

  note "$rt: a timeout ends the invocation and everything of its container"
  old=$(fn_containers $fn)
  runner=$(runner_pid "$old")
  procs=$(descendants "$runner")
  t0=$(date +%s%3N)
  expect_error $fn '{"action":"timeout"}' - "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [0-9a-f-]+ Task timed out after 4\.00 seconds$"
  t1=$(date +%s%3N)
  [ $((t1 - t0)) -ge 3900 ] && [ $((t1 - t0)) -lt 7000 ] || fail "$rt: the timeout took $((t1 - t0)) ms"
  for _ in $(seq 50); do [ -z "$(runner_pid "$old")" ] && [ -z "$(cgroup_dirs "$old")" ] && break; sleep 0.1; done
  [ -z "$(runner_pid "$old")" ] || fail "$rt: the timed-out container $old is still listed"
  [ -z "$(cgroup_dirs "$old")" ] || fail "$rt: the timed-out container's cgroups remain: $(cgroup_dirs "$old")"
  for p in $runner $procs; do
    [ ! -e "/proc/$p" ] || [ "$(proc_state "$p")" = Z ] || fail "$rt: process $p ($(cat /proc/$p/comm 2>/dev/null)) of the timed-out container still runs"
  done
  expect_ok $fn '{"action":"echo"}'
  [ "$(fn_containers $fn)" != "$old" ] || fail "$rt: the timed-out container was reused"
done

note "init errors carry the runtime's own message, without a hang"
expect_error m-python-import '{}' Runtime.ImportModuleError "^Unable to import module 'needs_missing': No module named 'nosuchpkg'$"
expect_error m-python-syntax '{}' Runtime.UserCodeSyntaxError "^Syntax error in module 'syntax'"
expect_error m-python-nohandler '{}' Runtime.HandlerNotFound "^Handler 'nothere' missing on module 'app'$"
expect_ok m-python-deep
[ "$(jq_out 'j["where"]')" = pkg.sub.deep ] || fail "a handler in a package below subfolders: $(cat "$out")"
if [ $have_node = 1 ]; then
  expect_error m-node-init '{}' TypeError '^cannot start without configuration$'
fi
expect_error m-shell-initerror '{}' Runtime.ShellInitError '^cannot start: no configuration$'
expect_error m-shell-initcrash '{}' Runtime.ExitError 'Runtime exited with error: exit status 4$'
# It fails the same way again (a new container each time), quickly.
t0=$(date +%s%3N)
expect_error m-shell-initcrash '{}' Runtime.ExitError 'Runtime exited with error: exit status 4$'
[ $(($(date +%s%3N) - t0)) -lt 2500 ] || fail "an init crash took $(($(date +%s%3N) - t0)) ms to report"

note "a runtime that exits right after answering: the next invocations never meet it"
for i in $(seq 8); do
  expect_ok m-shell-oneshot '{"action":"oneshot"}'
  [ "$(cat "$out")" = '"last words"' ] || fail "oneshot $i: $(cat "$out")"
done
retries=$(grep -c 'retrying it on a new container' "$EF_DATA/controller.log" || true)
notified=$(grep -c 'its runtime exited (exit status 0)' "$EF_DATA/controller.log" || true)
note "($notified containers dropped on the runner's notice, $retries invocations moved to a new container)"

note "stop and check nothing is left"
runner_pids=$(funclet_containers | awk '{ print $2 }')
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
