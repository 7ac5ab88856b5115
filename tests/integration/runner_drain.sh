#!/bin/bash
# A timeout with several invocations per runtime (runtime.start's max_concurrency): the timed-out
# invocation is answered at its deadline, but its runtime is not killed while it has others. It
# drains: the invocations in flight and the one queued run to their own end and get their real
# answers, a new invoke is refused with -32011 and {"draining": true} (it never reached the
# runtime, so the caller may send it elsewhere), and once the last one has ended the runtime is
# killed. With max_concurrency 1 and nothing else pending the runtime is killed at the deadline,
# as before. Host mode (an ordinary process), driven over JSON-RPC like the controller.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-runner-drain

"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"
TASK="$TMP/task"
mkdir -p "$TASK"
cat >"$TASK/app.py" <<'PYEOF'
import os
import time


def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid(), "request_id": context.aws_request_id, "start": start,
            "end": time.time()}
PYEOF
chmod -R a+rX "$TASK"

# invoke_bg ID EVENT: an invoke on its own connection in the background; the answer (or the
# error) lands in TMP/ID.json, the time it came back (epoch ms) in TMP/ID.end.
invoke_bg() {
  local payload
  payload=$($PY -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$2")
  local params="{\"request_id\":\"$1\",\"payload\":$payload}"
  ( "$RPC" --timeout 30000 "$SOCK" invoke "$params" >"$TMP/$1.json" 2>&1 || true
    date +%s%3N >"$TMP/$1.end" ) &
}

# wait_for FILE: waits up to 20 s for FILE to appear.
wait_for() {
  for _ in $(seq 400); do
    [ -s "$1" ] && return 0
    sleep 0.05
  done
  fail "$1 did not appear"
}

# Timeout 5 s. A sleeps far beyond it; B starts 2 s later and sleeps 4 s, so it is in flight
# when A times out (at 5 s) and ends (at about 6 s) 1 s before its own deadline; Q is queued
# behind them (two places) and is taken by B's worker once B has ended.
note "max_concurrency 2: a timeout leaves the other invocations of the runtime alone"
start_runner a "$TASK"
out=$(rpc runtime.start '{"function_name":"drain","handler":"app.handler","runtime":"python3.11","memory_mb":256,"timeout_s":5,"max_concurrency":2}')
PID=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"warm","payload":"{}"}')
expect "$out" 'r["status"] == "ok"' "the first invocation"
invoke_bg A '{"sleep": 60}'
sleep 2
invoke_bg B '{"sleep": 4}'
sleep 0.3
invoke_bg Q '{}'
wait_for "$TMP/A.end"
expect "$(cat "$TMP/A.json")" 'r["status"] == "timeout" and r["error_type"] == "Sandbox.Timedout"' "A's timeout"
[ ! -e "$TMP/B.end" ] || fail "B ended before A's timeout: $(cat "$TMP/B.json")"
kill -0 "$PID" 2>/dev/null || fail "the runtime was killed while B and Q were still to be served"

note "while draining, a new invocation is refused as not delivered, with draining in the data"
out=$(rpc_error invoke '{"request_id":"late","payload":"{}"}')
expect "$out" 'r["code"] == -32011 and r["data"]["draining"] is True and "timed out" in r["message"]' \
  "the refusal of an invocation sent after the timeout"

wait_for "$TMP/B.end"
wait_for "$TMP/Q.end"
expect "$(cat "$TMP/B.json")" 'r["status"] == "ok" and p["request_id"] == "B"' "B's own result"
expect "$(cat "$TMP/Q.json")" 'r["status"] == "ok" and p["request_id"] == "Q" and r["delivered"]' \
  "the queued Q's own result"
[ "$(cat "$TMP/A.end")" -lt "$(cat "$TMP/B.end")" ] || fail "A's timeout did not come before B's answer"

note "once the last invocation has ended the runtime is killed"
for _ in $(seq 100); do
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.05
done
kill -0 "$PID" 2>/dev/null && fail "the runtime (pid $PID) still runs after its drain"
grep -q "the last other invocation has ended" "$TMP/a.log" || fail "no log of the drain's end"
out=$(rpc_error invoke '{"request_id":"after","payload":"{}"}')
expect "$out" 'r["code"] == -32011 and r["data"]["draining"] is True' "an invocation after the drain"

note "a new runtime.start ends the drain: the new runtime takes invocations"
out=$(rpc runtime.start '{"function_name":"drain","handler":"app.handler","runtime":"python3.11","memory_mb":256,"timeout_s":1,"max_concurrency":2}')
PID2=$(pid_of "$out")
out=$(rpc invoke '{"request_id":"fresh","payload":"{}"}')
expect "$out" 'r["status"] == "ok"' "an invocation of the new runtime"

note "a timeout with nothing else pending kills the runtime at once"
t0=$(date +%s%3N)
out=$(rpc invoke '{"request_id":"alone","payload":"{\"sleep\": 30}"}')
expect "$out" 'r["status"] == "timeout"' "the lone timeout"
for _ in $(seq 40); do
  kill -0 "$PID2" 2>/dev/null || break
  sleep 0.05
done
kill -0 "$PID2" 2>/dev/null && fail "the runtime (pid $PID2) outlived a lone timeout"
[ $(($(date +%s%3N) - t0)) -lt 4000 ] || fail "the lone timeout took $(($(date +%s%3N) - t0)) ms"
stop_runner a
check_runner_logs "$TMP/a.log"
grep -q "ERROR" "$TMP/a.log" && fail "the runner logged errors: $(grep ERROR "$TMP/a.log")"
echo "PASS: runner_drain"
