#!/bin/bash
# Per-container concurrency: `easyfaas-runner init` on the host (as runner_init.sh runs it),
# started with runtime.start's max_concurrency, driven by several JSON-RPC clients at once as
# the controller would. The runtime sees AWS_LAMBDA_MAX_CONCURRENCY=N and polls /next N times at
# once: the bundled Python runtime with worker processes, and a custom runtime in bash and curl with N
# polling loops. Up to N invocations then run together, and no more; with the default of 1 they
# run one after another.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runner_lib.sh"
runner_setup ef-concurrency-test
command -v curl >/dev/null || { echo "SKIP: curl is not installed" >&2; exit 77; }

# invoke_many N PREFIX PAYLOAD: N invoke calls at once, each on its own connection; the answers
# land in $TMP/PREFIX-<i>.json; prints the wall time in ms.
invoke_many() {
  local n=$1 prefix=$2 payload=$3 t0 i pids=()
  t0=$(date +%s%3N)
  for i in $(seq "$n"); do
    "$RPC" --timeout 20000 "$SOCK" invoke "{\"request_id\":\"$prefix-$i\",\"payload\":$payload}" \
      >"$TMP/$prefix-$i.json" 2>"$TMP/$prefix-$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail "invoke $prefix-$((i + 1)) failed: $(cat "$TMP/$prefix-$((i + 1)).err")"
  done
  echo $(($(date +%s%3N) - t0))
}

"$RUNNER" prepare --dest "$TMP/runtime" >/dev/null || fail "prepare failed"

TASK="$TMP/task"
mkdir -p "$TASK"
cat >"$TASK/app.py" <<'PYEOF'
import os
import threading
import time


def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    return {"thread": threading.current_thread().name, "pid": os.getpid(),
            "request_id": context.aws_request_id, "start": start, "end": time.time(),
            "max_concurrency": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")}
PYEOF
CUSTOM="$TMP/custom"
mkdir -p "$CUSTOM"
cat >"$CUSTOM/bootstrap" <<'SHEOF'
#!/bin/bash
# A custom runtime that polls /next from several loops at once when the platform allows it.
set -u
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
poller() {
  local headers="/tmp/headers.$1" event id start
  while true; do
    event=$(curl -sS -D "$headers" "$api/invocation/next") || exit 1
    id=$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$headers")
    start=$(date +%s%3N)
    sleep 1
    curl -sS -o /dev/null -X POST \
      -d "{\"poller\":$1,\"start\":$start,\"end\":$(date +%s%3N),\"event\":$event}" \
      "$api/invocation/$id/response"
  done
}
for i in $(seq 2 "${AWS_LAMBDA_MAX_CONCURRENCY:-1}"); do
  poller "$i" &
done
poller 1
SHEOF
chmod -R a+rX "$TASK" "$CUSTOM"
chmod 0755 "$CUSTOM/bootstrap"

# ---------------------------------------------------------------------------------------------
note "runner A: Python with max_concurrency 4 serves 4 invocations at once"
start_runner a "$TASK"
"$RPC" "$SOCK" runtime.start '{"function_name":"conc","handler":"app.handler","runtime":"python3.11","memory_mb":256,"timeout_s":30,"max_concurrency":4}' >/dev/null \
  || fail "runtime.start with max_concurrency 4"
invoke_many 1 warm '"{}"' >/dev/null # the runtime has started and polls
ms=$(invoke_many 4 py '"{\"sleep\": 1}"')
answers py 4 'all(r["status"] == "ok" for r in rs)' "all succeed"
answers py 4 'len({p["pid"] for p in ps}) == 4' "four worker processes of the runtime served them"
answers py 4 'all(p["max_concurrency"] == "4" for p in ps)' "AWS_LAMBDA_MAX_CONCURRENCY=4"
answers py 4 'sorted(p["request_id"] for p in ps) == ["py-1", "py-2", "py-3", "py-4"]' "request ids"
answers py 4 'max(p["start"] for p in ps) < min(p["end"] for p in ps)' "they overlapped in time"
[ "$ms" -lt 2500 ] || fail "four 1 s invocations at concurrency 4 took $ms ms"

note "runner A: a fifth one waits for a free place"
ms=$(invoke_many 5 py5 '"{\"sleep\": 1}"')
answers py5 5 'all(r["status"] == "ok" for r in rs)' "all succeed"
[ "$ms" -ge 1900 ] && [ "$ms" -lt 3500 ] || fail "five 1 s invocations at concurrency 4 took $ms ms"
stop_runner A

note "runner B: the default is one at a time"
start_runner b "$TASK"
"$RPC" "$SOCK" runtime.start '{"function_name":"one","handler":"app.handler","runtime":"python3.11","memory_mb":256,"timeout_s":30}' >/dev/null
invoke_many 1 warm '"{}"' >/dev/null
ms=$(invoke_many 3 seq '"{\"sleep\": 0.5}"')
answers seq 3 'all(r["status"] == "ok" and p["max_concurrency"] is None for r, p in zip(rs, ps))' "all succeed, no variable"
answers seq 3 'all(a["end"] <= b["start"] + 0.05 or b["end"] <= a["start"] + 0.05 for a in ps for b in ps if a is not b)' \
  "they did not overlap"
[ "$ms" -ge 1450 ] || fail "three 0.5 s invocations at concurrency 1 took only $ms ms"
stop_runner B

note "runner C: a custom runtime polling from 3 loops serves 3 at once"
start_runner c "$CUSTOM"
"$RPC" "$SOCK" runtime.start '{"function_name":"custom","handler":"x.y","runtime":"provided.al2023","memory_mb":128,"timeout_s":30,"max_concurrency":3}' >/dev/null
ms=$(invoke_many 3 sh '"{\"n\":1}"')
answers sh 3 'all(r["status"] == "ok" for r in rs) and len({p["poller"] for p in ps}) == 3' "three pollers"
answers sh 3 'max(p["start"] for p in ps) < min(p["end"] for p in ps)' "they overlapped in time"
[ "$ms" -lt 2500 ] || fail "three 1 s invocations at concurrency 3 took $ms ms"
stop_runner C

check_runner_logs "$TMP"/[a-c].log
echo "PASS: runtime_concurrency"
