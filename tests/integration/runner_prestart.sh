#!/bin/bash
# `easyfaas-runner init --prestart python` starts a Python runtime at once and hands it to the
# first python3.* function: runtime.start answers with that process, which then runs with the
# function's environment, in its task directory, and serves invocations. A function whose
# environment changes how an interpreter starts (PYTHONPATH here), or of another runtime, gets a
# runtime of its own and the waiting one ends; so does it when the runner stops. Host mode (an
# ordinary process), driven over JSON-RPC like the controller.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-runner-prestart

"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"
TASK="$TMP/task"
mkdir -p "$TASK"
cat >"$TASK/app.py" <<'PYEOF'
import os


def handler(event, context):
    return {"pid": os.getpid(), "cwd": os.getcwd(), "setting": os.environ.get("SETTING"),
            "name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "prestart": os.environ.get("EF_PRESTART_FD"), "path": os.environ.get("PYTHONPATH"),
            "event": event}
PYEOF
cat >"$TASK/bootstrap" <<'SHEOF'
#!/bin/bash
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$headers")
  curl -sS -o /dev/null -X POST -d "{\"shell\": true, \"event\": $event}" "$api/invocation/$id/response"
done
SHEOF
chmod -R a+rX "$TASK"
chmod 0755 "$TASK/bootstrap"

# waiting_pid: the pid of the runner's child that waits (a python3 process of uid 1001).
waiting_pid() {
  local p
  for p in $(pgrep -P "$RUNNER_PID" || true); do
    if grep -q "python/bootstrap" "/proc/$p/cmdline" 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

wait_waiting() {
  for _ in $(seq 100); do
    [ -n "$(waiting_pid)" ] && return 0
    sleep 0.05
  done
  fail "no Python runtime was started ahead: $(cat "$TMP/$1.log")"
}

note "--prestart python: a runtime waits before any function; the first Python function gets it"
RUNNER_ARGS="--prestart python" start_runner a "$TASK"
wait_waiting a
WAITING=$(waiting_pid)
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$WAITING/status")" = 1001 ] || fail "the waiting runtime is not uid 1001"
out=$(rpc runtime.start '{"function_name":"fits","handler":"app.handler","runtime":"python3.11","memory_mb":128,"timeout_s":30,"environment":{"SETTING":"one"}}')
[ "$(pid_of "$out")" = "$WAITING" ] || fail "runtime.start did not hand over the waiting runtime ($WAITING): $out"
out=$(rpc invoke '{"request_id":"p-1","payload":"{\"x\": 1}"}')
expect "$out" 'r["status"] == "ok" and p["pid"] == '"$WAITING"' and p["setting"] == "one"' "the function's environment"
expect "$out" 'p["cwd"] == "'"$TASK"'" and p["name"] == "fits" and p["prestart"] is None' "its directory and nothing of the wait"
expect "$out" 'p["event"] == {"x": 1}' "the event"
grep -q "(started ahead) given for function fits" "$TMP/a.log" || fail "the log does not say the runtime was started ahead"
stop_runner a

note "a function with PYTHONPATH gets an interpreter of its own; the waiting one ends"
RUNNER_ARGS="--prestart python" start_runner b "$TASK"
wait_waiting b
WAITING=$(waiting_pid)
out=$(rpc runtime.start '{"function_name":"path","handler":"app.handler","runtime":"python3.11","memory_mb":128,"timeout_s":30,"environment":{"PYTHONPATH":"/opt/x"}}')
NEW=$(pid_of "$out")
[ "$NEW" != "$WAITING" ] || fail "a function with PYTHONPATH was handed the waiting runtime"
[ ! -e "/proc/$WAITING" ] || grep -q '^State:.*Z' "/proc/$WAITING/status" || fail "the waiting runtime was left running"
out=$(rpc invoke '{"request_id":"p-2","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["pid"] == '"$NEW"' and p["path"] == "/opt/x"' "the new runtime serves with PYTHONPATH"
stop_runner b

note "a custom runtime: the waiting Python one ends, the function's bootstrap serves"
RUNNER_ARGS="--prestart python" start_runner c "$TASK"
wait_waiting c
WAITING=$(waiting_pid)
out=$(rpc runtime.start '{"function_name":"shell","handler":"bootstrap","runtime":"provided.al2023","memory_mb":128,"timeout_s":30}')
[ "$(pid_of "$out")" != "$WAITING" ] || fail "a custom runtime was handed the waiting Python runtime"
[ -z "$(waiting_pid)" ] || fail "the waiting Python runtime was left running"
out=$(rpc invoke '{"request_id":"p-3","payload":"{\"y\": 2}"}')
expect "$out" 'r["status"] == "ok" and p["shell"] is True and p["event"] == {"y": 2}' "the custom runtime serves"
stop_runner c

note "a runner stopped while a runtime waits ends it"
RUNNER_ARGS="--prestart python" start_runner d "$TASK"
wait_waiting d
WAITING=$(waiting_pid)
stop_runner d
[ ! -e "/proc/$WAITING" ] || fail "the waiting runtime outlived its runner"

note "without --prestart nothing waits"
start_runner e "$TASK"
sleep 0.5
[ -z "$(waiting_pid)" ] || fail "a runtime was started ahead without --prestart"
stop_runner e

check_runner_logs "$TMP"/*.log
echo "PASS"
