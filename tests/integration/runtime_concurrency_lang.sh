#!/bin/bash
# Per-container concurrency in the bundled language runtimes: `easyfaas-runner init` on the host
# (as runtime_concurrency.sh runs it), started with runtime.start's max_concurrency, driven by
# several JSON-RPC clients at once as the controller would.
#
# Node.js runs N polling loops in one process: four handlers that each await a 500 ms timer
# finish together, each with its own request id, event, deadline and console request id; a
# callback handler answers without waiting for the event loop to empty; an uncaught exception
# fails every invocation in flight. Python forks N worker processes after importing the
# handler: four 500 ms sleeps finish together, in four processes; a handler that cannot be
# imported is one init error and the runtime ends; a worker never outlives the bootstrap, even
# when nothing else kills it. With max_concurrency 1 the same four calls run one after another.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-concurrency-lang
command -v node >/dev/null || { echo "SKIP: Node.js is not installed" >&2; exit 77; }

# start_runtime NAME TASK_DIR RUNTIME HANDLER CONCURRENCY: a runner and its runtime; sets
# RUNTIME_PID (the bootstrap's pid: the runner runs on the host here).
start_runtime() {
  start_runner "$1" "$2"
  local params
  params="{\"function_name\":\"$1\",\"handler\":\"$4\",\"runtime\":\"$3\",\"memory_mb\":256,\"timeout_s\":60,\"max_concurrency\":$5}"
  "$RPC" "$SOCK" runtime.start "$params" >"$TMP/$1.start" || fail "runtime.start $params"
  RUNTIME_PID=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$TMP/$1.start")
}

# invoke_many N PREFIX EVENT_FIELDS: N invoke calls at once, each on its own connection, with
# the event {"n": i, EVENT_FIELDS} and a deadline i × 10 s away (so that every invocation has a
# deadline of its own); the answers land in $TMP/PREFIX-<i>.json; prints the wall time in ms.
invoke_many() {
  local n=$1 prefix=$2 fields=$3 t0 now i pids=()
  t0=$(date +%s%3N)
  for i in $(seq "$n"); do
    now=$(date +%s%3N)
    "$RPC" --timeout 60000 "$SOCK" invoke \
      "{\"request_id\":\"$prefix-$i\",\"deadline_ms\":$((now + 10000 * i)),\"payload\":\"{\\\"n\\\": $i$fields}\"}" \
      >"$TMP/$prefix-$i.json" 2>"$TMP/$prefix-$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail "invoke $prefix-$((i + 1)) failed: $(cat "$TMP/$prefix-$((i + 1)).err")"
  done
  echo $(($(date +%s%3N) - t0))
}

# Every invocation got its own event, request id and deadline (i × 10 s away, less the run time).
OWN='all(r["status"] == "ok" for r in rs) and [p["request_id"] for p in ps] == ["%s-%d" % (prefix, i) for i in range(1, n + 1)] and [p["event"]["n"] for p in ps] == list(range(1, n + 1)) and all(10000 * i - 3000 < p["remaining"] <= 10000 * i for i, p in enumerate(ps, 1))'

# gone PID...: true once none of the processes is running (gone, or a zombie nobody reaped yet).
gone() {
  local pid state
  for pid in "$@"; do
    state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null || true)
    [ -z "$state" ] || [ "$state" = Z ] || return 1
  done
}

# children PID: the pids of a process's children.
children() {
  cat /proc/"$1"/task/*/children 2>/dev/null || true
}

"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"

NODE_TASK="$TMP/node"
mkdir -p "$NODE_TASK"
cat >"$NODE_TASK/index.js" <<'JSEOF'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function describe(event, context, start) {
  return {
    request_id: context.awsRequestId,
    event,
    remaining: context.getRemainingTimeInMillis(),
    pid: process.pid,
    start,
    end: Date.now(),
    trace_env: process.env._X_AMZN_TRACE_ID || null,
    trace: context.xRayTraceId || null,
    concurrency: process.env.AWS_LAMBDA_MAX_CONCURRENCY || null,
  };
}

// Three parameters, so that a callback is a possible way to answer.
exports.handler = (event, context, callback) => {
  const start = Date.now();
  if (event.mode === 'callback') {
    // A timer outlives the answer: with one invocation at a time the answer waits for it.
    setTimeout(() => {}, event.linger_ms || 0);
    setTimeout(() => callback(null, describe(event, context, start)), event.sleep_ms);
    return undefined;
  }
  return (async () => {
    console.log(`begin ${context.awsRequestId}`);
    if (event.crash) {
      setTimeout(() => {
        throw new Error(`boom from ${context.awsRequestId}`);
      }, 200);
    }
    await sleep(event.sleep_ms || 0);
    console.log(`end ${context.awsRequestId}`);
    return describe(event, context, start);
  })();
};
JSEOF

PY_TASK="$TMP/python"
mkdir -p "$PY_TASK"
cat >"$PY_TASK/app.py" <<'PYEOF'
import os
import time


def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep_ms", 0) / 1000)
    return {"request_id": context.aws_request_id, "event": event,
            "remaining": context.get_remaining_time_in_millis(), "pid": os.getpid(),
            "ppid": os.getppid(), "start": start * 1000, "end": time.time() * 1000,
            "trace_env": os.environ.get("_X_AMZN_TRACE_ID")}
PYEOF
chmod -R a+rX "$NODE_TASK" "$PY_TASK"

# ---------------------------------------------------------------------------------------------
note "Node.js, max_concurrency 4: four 500 ms awaits at once"
start_runtime node4 "$NODE_TASK" nodejs20.x index.handler 4
invoke_many 1 warm '' >/dev/null
ms=$(invoke_many 4 na ', \"sleep_ms\": 500')
answers na 4 "$OWN" "each its own request id, event and deadline"
answers na 4 'len({p["pid"] for p in ps}) == 1 and all(p["concurrency"] == "4" for p in ps)' "one process"
answers na 4 'max(p["start"] for p in ps) < min(p["end"] for p in ps)' "they overlapped in time"
answers na 4 'all(p["trace"] and p["trace_env"] is None for p in ps) and len({p["trace"] for p in ps}) == 4' \
  "trace ids in the context only"
# A line logged after the await carries the request id of the invocation that logged it.
answers na 4 '(lambda ls: all(i == m for i, m in ls) and {m for i, m in ls} == {"na-%d" % k for k in range(1, 5)})([(x.group(1), x.group(2)) for r in rs for x in re.finditer(r"\t(\S+)\tINFO\tend (\S+)", r.get("log", ""))])' \
  "console lines carry their own invocation's request id"
[ "$ms" -lt 1500 ] || fail "four 500 ms invocations at concurrency 4 took $ms ms"

note "Node.js, max_concurrency 4: callbacks answer without waiting for the event loop"
ms=$(invoke_many 4 nc ', \"mode\": \"callback\", \"sleep_ms\": 500, \"linger_ms\": 4000')
answers nc 4 "$OWN" "each its own request id, event and deadline"
[ "$ms" -lt 1500 ] || fail "four 500 ms callback invocations at concurrency 4 took $ms ms"

note "Node.js, max_concurrency 4: an uncaught exception fails every invocation in flight"
ms=$(invoke_many 2 nx ', \"sleep_ms\": 2000, \"crash\": true')
answers nx 2 'all(r["status"] == "error" and p.get("errorMessage", "").startswith("boom from nx-") for r, p in zip(rs, ps))' \
  "both failed with the uncaught error"
[ "$ms" -lt 1500 ] || fail "the uncaught exception took $ms ms to fail the invocations"
for _ in $(seq 50); do
  gone "$RUNTIME_PID" && break
  sleep 0.1
done
gone "$RUNTIME_PID" || fail "the Node.js runtime did not end after an uncaught exception"
grep -q "exit status 129" "$TMP/node4.log" || fail "the runtime did not exit with 129"
stop_runner node4

note "Node.js, max_concurrency 1: the same four calls one after another"
start_runtime node1 "$NODE_TASK" nodejs20.x index.handler 1
invoke_many 1 warm '' >/dev/null
ms=$(invoke_many 4 n1 ', \"sleep_ms\": 500')
answers n1 4 "$OWN" "each its own request id, event and deadline"
answers n1 4 'all(p["trace_env"] == p["trace"] and p["concurrency"] is None for p in ps)' "_X_AMZN_TRACE_ID is set"
[ "$ms" -ge 2000 ] || fail "four 500 ms invocations at concurrency 1 took only $ms ms"
# One at a time, a callback's result still waits for the event loop to empty (the 1.5 s timer).
ms=$(invoke_many 1 n1c ', \"mode\": \"callback\", \"sleep_ms\": 100, \"linger_ms\": 1500')
answers n1c 1 "$OWN" "a callback answer"
[ "$ms" -ge 1500 ] || fail "a callback answered after $ms ms, before the event loop was empty"
stop_runner node1

# ---------------------------------------------------------------------------------------------
note "Python, max_concurrency 4: four 500 ms sleeps at once, in four worker processes"
start_runtime py4 "$PY_TASK" python3.11 app.handler 4
invoke_many 1 warm '' >/dev/null
ms=$(invoke_many 4 pa ', \"sleep_ms\": 500')
answers pa 4 "$OWN" "each its own request id, event and deadline"
answers pa 4 "len({p['pid'] for p in ps}) == 4 and all(p['ppid'] == $RUNTIME_PID for p in ps)" \
  "four workers of the bootstrap"
answers pa 4 'max(p["start"] for p in ps) < min(p["end"] for p in ps)' "they overlapped in time"
[ "$ms" -lt 1500 ] || fail "four 500 ms invocations at concurrency 4 took $ms ms"

note "Python, max_concurrency 4: a worker killed ends the runtime, and no worker stays behind"
read -r -a workers <<<"$(children "$RUNTIME_PID" | tr '\n' ' ')"
[ "${#workers[@]}" = 4 ] || fail "the bootstrap has ${#workers[@]} children, not 4: ${workers[*]}"
kill -KILL "${workers[0]}"
for _ in $(seq 50); do
  gone "$RUNTIME_PID" "${workers[@]}" && break
  sleep 0.1
done
gone "$RUNTIME_PID" "${workers[@]}" || fail "the bootstrap or a worker is still running"
grep -q "ended: signal: killed\|ended: killed" "$TMP/py4.log" ||
  fail "the runner did not see the runtime killed: $(grep ended "$TMP/py4.log")"
stop_runner py4

note "Python, max_concurrency 1: the same four calls one after another"
start_runtime py1 "$PY_TASK" python3.11 app.handler 1
invoke_many 1 warm '' >/dev/null
ms=$(invoke_many 4 p1 ', \"sleep_ms\": 500')
answers p1 4 "$OWN" "each its own request id, event and deadline"
answers p1 4 "all(p['pid'] == $RUNTIME_PID for p in ps)" "the bootstrap itself served them"
[ "$ms" -ge 2000 ] || fail "four 500 ms invocations at concurrency 1 took only $ms ms"
stop_runner py1

note "Python, max_concurrency 4, a handler that cannot be imported: one init error, no hang"
start_runtime pyerr "$PY_TASK" python3.11 missing.handler 4
ms=$(invoke_many 2 pe '')
answers pe 2 'all(r["status"] == "error" and r["error_type"] == "Runtime.ImportModuleError" for r in rs)' \
  "the init error"
[ "$(grep -c "reported an init error" "$TMP/pyerr.log")" = 1 ] || fail "the init error was not reported once"
[ "$ms" -lt 5000 ] || fail "the init error took $ms ms"
for _ in $(seq 50); do
  gone "$RUNTIME_PID" && break
  sleep 0.1
done
gone "$RUNTIME_PID" || fail "the bootstrap did not end after the init error"
grep -q "ended: exit status 1" "$TMP/pyerr.log" || fail "the runtime did not exit with 1"
stop_runner pyerr

note "Python, max_concurrency 3, no runner: killing the bootstrap kills its workers (PDEATHSIG)"
# A Runtime API that accepts connections and never answers: the workers wait in /next.
$PY - "$TMP/silent.port" <<'PYEOF' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    held.append(s.accept()[0])
PYEOF
PIDS+=($!)
for _ in $(seq 100); do
  [ -s "$TMP/silent.port" ] && break
  sleep 0.05
done
env AWS_LAMBDA_RUNTIME_API="127.0.0.1:$(cat "$TMP/silent.port")" _HANDLER=app.handler \
  LAMBDA_TASK_ROOT="$PY_TASK" AWS_LAMBDA_MAX_CONCURRENCY=3 \
  "$EF_SOURCE_DIR/runtimes/python/bootstrap" >"$TMP/direct.err" 2>&1 &
boot=$!
PIDS+=("$boot")
workers=()
for _ in $(seq 100); do
  read -r -a workers <<<"$(children "$boot" | tr '\n' ' ')"
  [ "${#workers[@]}" = 3 ] && break
  sleep 0.05
done
[ "${#workers[@]}" = 3 ] || fail "the bootstrap started ${#workers[@]} workers, not 3"
gone "${workers[@]}" && fail "the workers are not running"
kill -KILL "$boot"
wait "$boot" 2>/dev/null || true
for _ in $(seq 30); do
  gone "${workers[@]}" && break
  sleep 0.1
done
gone "${workers[@]}" || fail "workers ${workers[*]} outlived the bootstrap"

check_runner_logs "$TMP"/*.log
echo "PASS: runtime_concurrency_lang"
