#!/bin/bash
# `easyfaas-runner init` on the host as an ordinary process, driven over JSON-RPC as the
# controller drives it: the bundled Python runtime runs a real handler as uid 1001 without
# capabilities, and results, errors, logs, init errors and runtime exits come back per
# docs/rpc.md. Also checks `easyfaas-runner prepare`, the Runtime API's refusals (and its
# percent-decoded request ids), output written between invocations reaching the next one's log,
# and a runtime that reports an init error being ended so that a new one runs init again.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-runner-test

# ---------------------------------------------------------------------------------------------
note "prepare installs the runner and the runtimes, and can run again"
"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"
"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "a second prepare failed"
cmp -s "$RUNNER" "$TMP/runtime/bin/easyfaas-runner" || fail "bin/easyfaas-runner is not a copy"
[ "$(stat -c %a "$TMP/runtime/bin/easyfaas-runner")" = 755 ] || fail "runner not mode 0755"
[ "$(stat -c %a "$TMP/runtime/python/bootstrap")" = 755 ] || fail "bootstrap not mode 0755"
for d in "$TMP/runtime" "$TMP/runtime/bin" "$TMP/runtime/python"; do
  [ "$(stat -c %a "$d")" = 755 ] || fail "$d is not mode 0755"
done
if ls -A "$TMP/runtime/bin" "$TMP/runtime/python" | grep -q '\.tmp'; then
  fail "prepare left temporary files"
fi
# The Python runtime is compiled by prepare, and an interpreter that cannot write a cache (-B,
# as in the read-only /var/runtime) loads it from there instead of compiling the source.
pyc=$(ls "$TMP"/runtime/python/__pycache__/ef_runtime.cpython-*.pyc 2>/dev/null | head -1)
[ -n "$pyc" ] || fail "prepare did not compile the Python runtime"
[ "$(stat -c %a "$pyc")" = 644 ] || fail "$pyc is not mode 0644"
imports=$(/usr/bin/python3 -sS -B -v -c "import sys; sys.path.insert(0, '$TMP/runtime/python'); import ef_runtime" 2>&1)
grep -q "code object from '$pyc'" <<<"$imports" || fail "the Python runtime was not loaded from $pyc"
if "$RUNNER" prepare --dest "$TMP/x" --runtimes-src "$TMP/missing" 2>"$TMP/prep.err"; then
  fail "prepare with a missing --runtimes-src succeeded"
fi
grep -q "missing" "$TMP/prep.err" || fail "prepare's error does not name the missing dir"

# ---------------------------------------------------------------------------------------------
TASK="$TMP/task"
mkdir -p "$TASK"
cat >"$TASK/app.py" <<'PYEOF'
import os
import signal
import subprocess
import time


def handler(event, context):
    action = event.get("action")
    if action == "raise":
        raise ValueError("bad input: %s" % event.get("x"))
    if action == "exit":
        print("about to exit")
        os._exit(3)
    if action == "orphan":
        # A grandchild that outlives its parent: the runner must reap it.
        out = subprocess.run(["/bin/sh", "-c", "sleep 1.5 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, check=True)
        return int(out.stdout)
    if action == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return "ignoring"
    if action == "set":
        return {1, 2}
    if action == "background":
        # Output after the handler has returned: a background printer and a late thread.
        import threading
        proc = subprocess.Popen(["/bin/sh", "-c", "while :; do echo bg-tick; sleep 0.2; done"])
        threading.Timer(0.5, lambda: print("late from a thread", flush=True)).start()
        return proc.pid
    if action == "unicode":
        import decimal
        print("h\u00e9llo \u20ac")
        return {"text": "h\u00e9llo \u20ac", "price": decimal.Decimal("1.5")}
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except FileNotFoundError:
            pass  # the descriptor listdir itself used
    print("hello from the handler", event.get("name"))
    names = ["AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
             "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
             "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME",
             "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "TZ", "LANG", "PATH", "HOME",
             "LD_LIBRARY_PATH", "MY_SETTING"]
    return {
        "echo": event.get("name"),
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "cap_eff": status["CapEff"], "cap_prm": status["CapPrm"], "cap_bnd": status["CapBnd"],
        "cap_amb": status["CapAmb"], "no_new_privs": status["NoNewPrivs"],
        "cwd": os.getcwd(), "fds": fds, "sid_is_self": os.getsid(0) == os.getpid(),
        "env": {n: os.environ.get(n) for n in names},
        "function_name": context.function_name, "function_version": context.function_version,
        "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id, "arn": context.invoked_function_arn,
        "log_group": context.log_group_name, "log_stream": context.log_stream_name,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
PYEOF
chmod -R a+rX "$TASK"

START='{"function_name":"hello","function_version":"$LATEST","handler":"app.handler","runtime":"python3.11","memory_mb":256,"timeout_s":30,"environment":{"MY_SETTING":"42","_HANDLER":"evil.handler","LAMBDA_TASK_ROOT":"/evil","AWS_LAMBDA_RUNTIME_API":"1.2.3.4:1"}}'

note "runner A: invoke before runtime.start, bad params, unknown method"
start_runner a "$TASK"
out=$(rpc_error invoke '{"request_id":"early","payload":"{}"}')
expect "$out" 'r["code"] == -32011' "invoke before runtime.start"
out=$(rpc_error runtime.start '{"function_name":"hello","handler":"app.handler","runtime":"ruby3.2","memory_mb":128}')
expect "$out" 'r["code"] == -32602 and "ruby3.2" in r["message"]' "unknown runtime"
out=$(rpc_error runtime.start '{"function_name":"hello","handler":"app.handler","runtime":"python3.11"}')
expect "$out" 'r["code"] == -32602 and "memory_mb" in r["message"]' "missing memory_mb"
out=$(rpc_error container.list '{}')
expect "$out" 'r["code"] == -32601' "unknown method"

note "runner A: runtime.start, then a second one is refused"
out=$(rpc runtime.start "$START")
expect "$out" 'isinstance(r["pid"], int) and r["pid"] > 0' "runtime.start result"
RUNTIME_PID=$(pid_of "$out")
out=$(rpc_error runtime.start "$START")
expect "$out" 'r["code"] == -32011' "second runtime.start"

note "runner A: a successful invocation"
DEADLINE=$(( $(date +%s%3N) + 30000 ))
out=$(rpc invoke "{\"request_id\":\"req-1\",\"payload\":\"{\\\"name\\\":\\\"world\\\"}\",\"deadline_ms\":$DEADLINE,\"invoked_function_arn\":\"arn:aws:lambda:us-east-1:123456789012:function:hello\"}")
expect "$out" 'r["status"] == "ok" and "error_type" not in r' "status ok"
expect "$out" 'p["echo"] == "world"' "the event reached the handler"
expect "$out" 'p["function_name"] == "hello" and p["function_version"] == "$LATEST"' "context name"
expect "$out" 'p["memory"] == "256"' "context.memory_limit_in_mb"
expect "$out" '0 < p["remaining"] <= 30000' "context.get_remaining_time_in_millis()"
expect "$out" 'p["request_id"] == "req-1"' "context.aws_request_id"
expect "$out" 'p["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:hello"' "context ARN"
expect "$out" 'p["log_group"] == "/aws/lambda/hello" and "[$LATEST]" in p["log_stream"]' "log names"
expect "$out" 'p["trace"].startswith("Root=1-")' "trace id"
expect "$out" 'p["uid"] == 1001 and p["gid"] == 1001 and p["groups"] == []' "runs as 1001:1001"
expect "$out" 'int(p["cap_eff"], 16) == 0 and int(p["cap_prm"], 16) == 0' "no capabilities"
expect "$out" 'int(p["cap_bnd"], 16) == 0 and int(p["cap_amb"], 16) == 0' "empty bounding set"
expect "$out" 'p["no_new_privs"] == "1"' "no_new_privs"
expect "$out" 'p["sid_is_self"]' "own session"
expect "$out" "p['cwd'] == '$TASK'" "cwd is the task dir"
expect "$out" 'p["fds"]["0"] == "/dev/null"' "stdin is /dev/null"
expect "$out" 'p["fds"]["1"].startswith("pipe:") and p["fds"]["2"].startswith("pipe:")' "stdout/stderr pipes"
expect "$out" 'len([t for t in p["fds"].values() if t.startswith("socket:")]) == 1' \
  "only the Runtime API connection is a socket (the RPC socket was not inherited)"
expect "$out" "p['env']['AWS_LAMBDA_RUNTIME_API'] == '127.0.0.1:$PORT'" "AWS_LAMBDA_RUNTIME_API"
expect "$out" "p['env']['_HANDLER'] == 'app.handler' and p['env']['LAMBDA_TASK_ROOT'] == '$TASK'" \
  "reserved variables not overridden"
expect "$out" "p['env']['LAMBDA_RUNTIME_DIR'] == '$TMP/runtime'" "LAMBDA_RUNTIME_DIR"
expect "$out" 'p["env"]["MY_SETTING"] == "42"' "the function's own variable"
expect "$out" 'p["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and p["env"]["AWS_REGION"] == "us-east-1"' "Lambda variables"
expect "$out" 'p["env"]["TZ"] == ":UTC" and p["env"]["HOME"] == "/tmp" and p["env"]["LANG"] == "en_US.UTF-8"' "TZ, HOME, LANG"
expect "$out" "p['env']['PATH'] == '/usr/local/bin:/usr/bin:/bin:$TMP/runtime/bin'" "PATH"
expect "$out" "p['env']['LD_LIBRARY_PATH'] == '$TASK/lib:$TMP/runtime/lib'" "LD_LIBRARY_PATH"
expect "$out" '"hello from the handler world" in r["log"]' "print() output in the log"

note "runner A: an exception becomes an error document"
out=$(rpc invoke '{"request_id":"req-2","payload":"{\"action\":\"raise\",\"x\":7}"}')
expect "$out" 'r["status"] == "error" and r["error_type"] == "ValueError"' "error status and type"
expect "$out" 'p["errorType"] == "ValueError" and p["errorMessage"] == "bad input: 7"' "error document"
expect "$out" 'isinstance(p["stackTrace"], list) and any("app.py" in l for l in p["stackTrace"])' "stack trace"
expect "$out" 'not any("bootstrap" in l for l in p["stackTrace"])' "no runtime frames in the trace"
expect "$out" '"[ERROR] ValueError: bad input: 7" in r["log"]' "the error is logged"
expect "$out" '"hello from the handler" not in r["log"]' "the log holds this invocation only"

note "runner A: a result that is not JSON-serialisable"
out=$(rpc invoke '{"request_id":"req-3","payload":"{\"action\":\"set\"}"}')
expect "$out" 'r["status"] == "error" and r["error_type"] == "Runtime.MarshalError"' "marshal error"
expect "$out" 'p["errorMessage"].startswith("Unable to marshal response:")' "marshal message"

note "runner A: non-ASCII text and Decimal values"
out=$(rpc invoke '{"request_id":"req-3b","payload":"{\"action\":\"unicode\"}"}')
expect "$out" 'r["status"] == "ok" and p == {"text": "h\u00e9llo \u20ac", "price": 1.5}' "unicode result"
expect "$out" 'r["log"] == "h\u00e9llo \u20ac\n"' "unicode output in the log"

note "runner A: the Runtime API refuses bad requests"
API="http://127.0.0.1:$PORT/2018-06-01/runtime"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data '{}' "$API/invocation/nope/response")
[ "$code" = 400 ] && grep -q InvalidRequestID "$TMP/body" || fail "unknown id: $code $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data '{}' "$API/invocation/req-1/response")
[ "$code" = 403 ] && grep -q InvalidStateTransition "$TMP/body" || fail "second response: $code $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$API/invocation/req-1/response")
[ "$code" = 404 ] || fail "GET on a POST route: $code"
# Percent-encoded ids are decoded: req%2D1 is req-1, which has responded.
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data '{}' "$API/invocation/req%2D1/response")
[ "$code" = 403 ] && grep -q InvalidStateTransition "$TMP/body" || fail "encoded id: $code $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data '{}' "$API/invocation/req%2/response")
[ "$code" = 400 ] && grep -q InvalidRequestID "$TMP/body" || fail "malformed escape: $code $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$API/unknown")
[ "$code" = 404 ] || fail "unknown path: $code"
head -c $((6 * 1024 * 1024 + 101)) /dev/zero >"$TMP/big"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data-binary @"$TMP/big" "$API/invocation/req-1/response" || true)
[ "$code" = 413 ] && grep -q RequestEntityTooLarge "$TMP/body" || fail "a body above 6 MiB + 100 bytes: $code"

note "runner A: orphans are reaped"
out=$(rpc invoke '{"request_id":"req-4","payload":"{\"action\":\"orphan\"}"}')
expect "$out" 'r["status"] == "ok" and isinstance(p, int)' "orphan invocation"
ORPHAN=$($PY -c 'import json,sys; print(json.loads(json.loads(sys.argv[1])["payload"]))' "$out")
[ "$(ps -o ppid= -p "$ORPHAN" | tr -d ' ')" = "$RUNNER_PID" ] ||
  fail "the orphan $ORPHAN was not adopted by the runner"
sleep 2
[ -d "/proc/$ORPHAN" ] && fail "the orphan $ORPHAN ended but was not reaped"
zombies=$(ps --ppid "$RUNNER_PID" -o stat= | grep -c Z || true)
[ "$zombies" = 0 ] || fail "$zombies zombie children of the runner were not reaped"

note "runner A: the runtime exits in the middle of an invocation"
out=$(rpc invoke '{"request_id":"req-5","payload":"{\"action\":\"exit\"}"}')
expect "$out" 'r["status"] == "error" and r["error_type"] == "Runtime.ExitError"' "exit status error"
expect "$out" 'p["errorMessage"] == "RequestId: req-5 Error: Runtime exited with error: exit status 3"' "exit message"
expect "$out" '"about to exit" in r["log"]' "output before the exit is in the log"
kill -0 "$RUNTIME_PID" 2>/dev/null && fail "the runtime process is still there"
out=$(rpc invoke '{"request_id":"req-6","payload":"{}"}')
expect "$out" 'r["status"] == "error" and p["errorMessage"] == "RequestId: req-6 Error: Runtime exited with error: exit status 3"' "later invocations fail the same way"

note "runner A: SIGTERM stops it with status 0"
stop_runner A
grep -q "ERROR" "$TMP/a.log" && fail "runner A logged errors"

# ---------------------------------------------------------------------------------------------
note "runner B: a handler whose module is missing fails with the init error"
start_runner b "$TASK"
out=$(rpc_error runtime.start '{"function_name":"custom","handler":"x","runtime":"provided.al2023","memory_mb":128}')
expect "$out" 'r["code"] == -32013 and "bootstrap" in r["message"] and "No such file" in r["message"]' \
  "a provided runtime without a bootstrap"
rpc runtime.start '{"function_name":"broken","handler":"missing_module.handler","runtime":"python3.12","memory_mb":128}' >/dev/null
out=$(rpc invoke '{"request_id":"b-1","payload":"{}"}')
expect "$out" 'r["status"] == "error" and r["error_type"] == "Runtime.ImportModuleError"' "import error"
expect "$out" "p['errorMessage'] == \"Unable to import module 'missing_module': No module named 'missing_module'\"" "import message"
out=$(rpc invoke '{"request_id":"b-2","payload":"{}"}')
expect "$out" 'r["status"] == "error" and r["error_type"] == "Runtime.ImportModuleError"' "remembered init error"
stop_runner B

note "runner C: a handler that is missing on its module"
start_runner c "$TASK"
rpc runtime.start '{"function_name":"nohandler","handler":"app.nothing","runtime":"python3.11","memory_mb":128}' >/dev/null
out=$(rpc invoke '{"request_id":"c-1","payload":"{}"}')
expect "$out" 'r["error_type"] == "Runtime.HandlerNotFound" and p["errorMessage"] == "Handler '"'"'nothing'"'"' missing on module '"'"'app'"'"'"' "handler not found"

note "runner C: SIGTERM after the runtime is gone"
stop_runner C

note "runner D: SIGTERM reaches a live runtime"
start_runner d "$TASK"
out=$(rpc runtime.start '{"function_name":"hello","handler":"app.handler","runtime":"python3.11","memory_mb":128}')
RUNTIME_PID=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"d-1","payload":"{\"name\":\"d\"}"}')
expect "$out" 'r["status"] == "ok"' "runner D invocation"
stop_runner D
[ -d "/proc/$RUNTIME_PID" ] && fail "the runtime outlived runner D"
grep -q "ended: signal: terminated" "$TMP/d.log" || fail "runner D did not see the runtime end by SIGTERM"

note "runner E: a runtime that ignores SIGTERM is killed after the grace period"
start_runner e "$TASK"
out=$(rpc runtime.start '{"function_name":"hello","handler":"app.handler","runtime":"python3.11","memory_mb":128}')
RUNTIME_PID=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"e-1","payload":"{\"action\":\"ignore_term\"}"}')
expect "$out" 'r["status"] == "ok" and p == "ignoring"' "runner E invocation"
t0=$(date +%s%3N)
stop_runner E
t1=$(date +%s%3N)
[ $((t1 - t0)) -ge 900 ] || fail "runner E did not wait for the runtime before killing it"
[ -d "/proc/$RUNTIME_PID" ] && fail "the runtime outlived runner E"
grep -q "ended: signal: killed" "$TMP/e.log" || fail "runner E did not kill the runtime"

note "runner F: a custom runtime (provided.*) is TASK_DIR/bootstrap"
CUSTOM="$TMP/custom"
mkdir -p "$CUSTOM"
cat >"$CUSTOM/bootstrap" <<'SHEOF'
#!/bin/sh
# A minimal custom runtime in shell and curl, as Lambda's tutorial writes one.
set -eu
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
headers="$HOME/headers.$$"
while true; do
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$headers")
  echo "custom runtime handling $id in $(pwd) as $(id -u)"
  curl -sS -o /dev/null -X POST -d "{\"handler\":\"$_HANDLER\",\"event\":$event}" \
    "$api/invocation/$id/response"
done
SHEOF
chmod -R a+rX "$CUSTOM"
chmod 0755 "$CUSTOM/bootstrap"
start_runner f "$CUSTOM"
rpc runtime.start '{"function_name":"custom","handler":"function.handler","runtime":"provided.al2023","memory_mb":128}' >/dev/null
out=$(rpc invoke '{"request_id":"f-1","payload":"{\"k\":[1,2]}"}')
expect "$out" 'r["status"] == "ok" and p == {"handler": "function.handler", "event": {"k": [1, 2]}}' "custom runtime result"
expect "$out" "r['log'] == 'custom runtime handling f-1 in $CUSTOM as 1001\n'" "custom runtime log"
stop_runner F

# ---------------------------------------------------------------------------------------------
note "runner G: what the runtime writes between invocations is in the next invocation's log"
start_runner g "$TASK"
rpc runtime.start '{"function_name":"hello","handler":"app.handler","runtime":"python3.11","memory_mb":128}' >/dev/null
out=$(rpc invoke '{"request_id":"g-1","payload":"{\"action\":\"background\"}"}')
expect "$out" 'r["status"] == "ok" and isinstance(p, int)' "background printer started"
BG=$($PY -c 'import json,sys; print(json.loads(json.loads(sys.argv[1])["payload"]))' "$out")
sleep 2
out=$(rpc invoke '{"request_id":"g-2","payload":"{\"name\":\"g\"}"}')
expect "$out" 'r["status"] == "ok" and p["echo"] == "g"' "the invocation after the idle spell"
expect "$out" 'r["log"].count("bg-tick\n") >= 5' "idle bg-tick lines in the next log"
expect "$out" '"late from a thread\n" in r["log"]' "a thread's print after the handler returned"
expect "$out" 'r["log"].index("bg-tick") < r["log"].index("hello from the handler g")' \
  "idle output comes before the invocation's own"
expect "$out" 'r["log"].index("late from a thread") < r["log"].index("hello from the handler g")' \
  "the late print comes before the invocation's own output"
out=$(rpc invoke '{"request_id":"g-3","payload":"{\"name\":\"g3\"}"}')
expect "$out" '"hello from the handler g\n" not in r["log"] and "hello from the handler g3" in r["log"]' \
  "the next log does not repeat what the previous one held"
stop_runner G
[ -d "/proc/$BG" ] && fail "the background printer outlived its runtime"

note "runner H: a runtime that reports an init error and sleeps on is ended; a new one runs init again"
BROKEN="$TMP/broken"
mkdir -p "$BROKEN" "$TMP/state"
chmod 0777 "$TMP/state"
cat >"$BROKEN/bootstrap" <<SHEOF
#!/bin/sh
# Counts its inits, reports an init error, then sleeps on instead of exiting. The init takes a
# moment, so that the invocation is queued when it fails.
echo init >>"$TMP/state/inits"
sleep 0.5
echo "init failed: no config"
curl -sS -o /dev/null -X POST -H "Lambda-Runtime-Function-Error-Type: Custom.InitBroken" \
  -d '{"errorType":"Custom.InitBroken","errorMessage":"no config"}' \
  "http://\$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"
exec sleep 3600
SHEOF
chmod -R a+rX "$BROKEN"
chmod 0755 "$BROKEN/bootstrap"
start_runner h "$BROKEN"
BROKEN_START='{"function_name":"broken","handler":"x","runtime":"provided.al2023","memory_mb":128}'
out=$(rpc runtime.start "$BROKEN_START")
RUNTIME_PID=$(pid_of "$out")
"$RPC" --timeout 20000 --notifications 1 "$SOCK" invoke '{"request_id":"h-1","payload":"{}"}' \
  >"$TMP/h1.out" || fail "invoke h-1 failed: $(cat "$TMP/h1.out")"
out=$(sed -n 1p "$TMP/h1.out")
expect "$out" 'r["status"] == "error" and r["error_type"] == "Custom.InitBroken" and p["errorMessage"] == "no config"' "the init error"
expect "$out" '"init failed: no config" in r["log"] and "wait_ms" not in r' "the init output, no wait_ms"
note=$(sed -n 2p "$TMP/h1.out")
expect "$note" 'r["method"] == "runtime.exited" and r["params"]["status"] == "signal: killed" and r["params"]["pid"] == '"$RUNTIME_PID" \
  "runtime.exited after the init error"
[ -d "/proc/$RUNTIME_PID" ] && fail "the runtime that reported an init error still runs"
grep -q "killing the runtime (pid $RUNTIME_PID) after its init error" "$TMP/h.log" ||
  fail "the runner did not log why it killed the runtime"
out=$(rpc invoke '{"request_id":"h-2","payload":"{}"}')
expect "$out" 'r["error_type"] == "Custom.InitBroken" and r["delivered"] == False' "later invocations until a new runtime"
[ "$(wc -l <"$TMP/state/inits")" = 1 ] || fail "init ran $(wc -l <"$TMP/state/inits") times, not once"
out=$(rpc runtime.start "$BROKEN_START")
out=$(rpc invoke '{"request_id":"h-3","payload":"{}"}')
expect "$out" 'r["error_type"] == "Custom.InitBroken"' "the new runtime's init error"
[ "$(wc -l <"$TMP/state/inits")" = 2 ] || fail "the new runtime did not run init again"
stop_runner H

check_runner_logs "$TMP"/[a-h].log
echo "PASS: runner_init"
