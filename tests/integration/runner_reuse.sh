#!/bin/bash
# `easyfaas-runner init` outlives its runtime: after the runtime has ended (an exit, a kill from
# outside as funclet's container.reset does it, a timeout), runtime.start starts a fresh runtime,
# possibly of another function, that sees nothing of the previous one: not its configuration or
# environment, not its output, not its invocations. A runtime.start while the runtime is still
# running stays -32011. Host mode (an ordinary process), driven over JSON-RPC like the controller.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-runner-reuse

"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"
TASK="$TMP/task"
mkdir -p "$TASK"
# Two functions in one task dir (the runner's --task-dir is fixed; in a container funclet mounts
# each function's code there in turn).
cat >"$TASK/alpha.py" <<'PYEOF'
import os
print("alpha is starting")


def handler(event, context):
    if event.get("action") == "exit":
        print("alpha exits")
        os._exit(3)
    if event.get("action") == "sleep":
        import time
        time.sleep(30)
    print("alpha handles", context.aws_request_id)
    return {"fn": "alpha", "name": context.function_name, "pid": os.getpid(),
            "setting": os.environ.get("ALPHA_SETTING"), "memory": context.memory_limit_in_mb}
PYEOF
cat >"$TASK/beta.py" <<'PYEOF'
import os
print("beta is starting")


def handler(event, context):
    print("beta handles", context.aws_request_id)
    return {"fn": "beta", "name": context.function_name, "pid": os.getpid(),
            "alpha_setting": os.environ.get("ALPHA_SETTING"),
            "beta_setting": os.environ.get("BETA_SETTING"), "memory": context.memory_limit_in_mb,
            "api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
            "timeout_left": context.get_remaining_time_in_millis()}
PYEOF
chmod -R a+rX "$TASK"

start_runner runner "$TASK"

ALPHA='{"function_name":"alpha","function_version":"$LATEST","handler":"alpha.handler","runtime":"python3.11","memory_mb":256,"timeout_s":30,"environment":{"ALPHA_SETTING":"a"}}'
BETA='{"function_name":"beta","function_version":"7","handler":"beta.handler","runtime":"python3.12","memory_mb":512,"timeout_s":5,"environment":{"BETA_SETTING":"b"}}'

note "runtime 1 (alpha) runs; a second runtime.start while it runs is refused as busy"
out=$(rpc runtime.start "$ALPHA")
PID1=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"r-1","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["fn"] == "alpha" and p["setting"] == "a"' "alpha's first invocation"
expect "$out" '"alpha handles r-1" in r["log"]' "alpha's log"
out=$(rpc_error runtime.start "$BETA")
expect "$out" 'r["code"] == -32011 and "still running" in r["message"]' "runtime.start while alpha runs"
out=$(rpc invoke '{"request_id":"r-2","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["pid"] == '"$PID1" "alpha still serves after the refused start"

note "runtime 1 exits; invocations fail until a new runtime.start"
out=$(rpc invoke '{"request_id":"r-3","payload":"{\"action\":\"exit\"}"}')
expect "$out" 'r["error_type"] == "Runtime.ExitError" and "exit status 3" in p["errorMessage"]' "alpha's exit"
out=$(rpc invoke '{"request_id":"r-4","payload":"{}"}')
expect "$out" 'r["error_type"] == "Runtime.ExitError" and r["delivered"] is False' "an invocation after the exit"

note "runtime 2 (beta) starts in the same runner and sees nothing of alpha"
out=$(rpc runtime.start "$BETA")
PID2=$(pid_of "$out")
[ "$PID2" != "$PID1" ] || fail "the same pid for two runtimes"
out=$(rpc invoke '{"request_id":"r-1","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["fn"] == "beta" and p["name"] == "beta" and p["pid"] == '"$PID2" "beta's result"
expect "$out" 'p["alpha_setting"] is None and p["beta_setting"] == "b" and p["memory"] == "512"' "beta's environment"
expect "$out" "p['api'] == '127.0.0.1:$PORT'" "the Runtime API is served on the same port"
expect "$out" '0 < p["timeout_left"] <= 5000' "beta's timeout (5 s), not alpha's"
expect "$out" '"beta handles r-1" in r["log"]' "beta's output in its log"
expect "$out" '"alpha" not in r["log"]' "nothing of alpha's output in beta's log"
out=$(rpc invoke '{"request_id":"r-5","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and r["log"] == "beta handles r-5\n"' "beta's second invocation"
grep -q "starting a new runtime for function beta" "$TMP/runner.log" || fail "no log of the new runtime"

note "runtime 2 killed from outside (as by container.reset), the runner stopped meanwhile"
# Stopped, the runner cannot handle SIGCHLD before the next runtime.start reaches it: whichever
# it sees first, the start must find the runtime gone and reap it.
kill -STOP "$RUNNER_PID"
kill -KILL "$PID2"
"$RPC" --timeout 20000 "$SOCK" runtime.start "$ALPHA" >"$TMP/start3.json" 2>&1 &
START3=$!
sleep 0.3
kill -CONT "$RUNNER_PID"
wait "$START3" || fail "runtime.start after a kill from outside failed: $(cat "$TMP/start3.json")"
PID3=$(pid_of "$(cat "$TMP/start3.json")")
out=$(rpc invoke '{"request_id":"r-6","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["fn"] == "alpha" and p["pid"] == '"$PID3"' and p["setting"] == "a"' "alpha again"
expect "$out" '"beta" not in r["log"]' "nothing of beta's output in alpha's log"
grep -q "runtime (pid $PID2) ended: signal: killed" "$TMP/runner.log" || fail "beta's kill was not seen"
[ -z "$(ps --ppid "$RUNNER_PID" -o stat= | grep Z || true)" ] || fail "zombies of the runner"

note "runtime 3 times out; a new runtime.start works"
DEADLINE=$(( $(date +%s%3N) + 500 ))
out=$(rpc invoke "{\"request_id\":\"r-7\",\"payload\":\"{\\\"action\\\":\\\"sleep\\\"}\",\"deadline_ms\":$DEADLINE}")
expect "$out" 'r["status"] == "timeout"' "the timeout"
for _ in $(seq 100); do
  kill -0 "$PID3" 2>/dev/null || break
  sleep 0.02
done
out=$(rpc runtime.start "$BETA")
PID4=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"r-8","payload":"{}"}')
expect "$out" 'r["status"] == "ok" and p["fn"] == "beta" and p["pid"] == '"$PID4" "beta after the timeout"
grep -q "runtime 4 of this runner" "$TMP/runner.log" || fail "the runner did not count four runtimes"

note "SIGTERM stops the runner with status 0 and no handle left open"
kill -TERM "$RUNNER_PID"
wait "$RUNNER_PID" || fail "the runner exited with status $? on SIGTERM"
check_runner_logs "$TMP/runner.log"
grep -q "ERROR" "$TMP/runner.log" && fail "the runner logged errors: $(grep ERROR "$TMP/runner.log")"
echo "PASS: runner_reuse"
