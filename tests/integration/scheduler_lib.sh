# shellcheck shell=bash
# Helpers of the scheduler's integration tests, on top of lib.sh (source lib.sh first).

# The function the tests create: sleeps as asked and says which container served it.
# shellcheck disable=SC2034 # used by the scripts that source this file
SLEEPER=$EF_SOURCE_DIR/tests/integration/functions/sleeper

# controller_start [FLAGS...]: starts the controller on the pod's data dir and port (again).
controller_start() {
  "$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --port "$EF_PORT" "$@" \
    2>>"$EF_DATA/controller.log" &
  CONTROLLER_PID=$!
  for _ in $(seq 200); do
    funclet_connected 2>/dev/null && return 0
    kill -0 "$CONTROLLER_PID" 2>/dev/null || { tail -n 20 "$EF_DATA/controller.log" >&2; fail "controller died at start"; }
    sleep 0.05
  done
  fail "the controller never saw funclet"
}

# controller_restart [FLAGS...]: SIGTERM, as an operator would, then start with FLAGS.
controller_restart() {
  kill -TERM "$CONTROLLER_PID"
  wait "$CONTROLLER_PID" || fail "controller exited with status $? on SIGTERM"
  controller_start "$@"
}

# funclet_start: starts funclet on the pod's data dir again (as pod_start does).
funclet_start() {
  # A socket left by a funclet that was killed must not pass for the new one's.
  rm -f "$EF_DATA/run/funclet.sock"
  # shellcheck disable=SC2086 # word splitting of EF_FUNCLET_ARGS is intended
  "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$EF_DATA" --cgroup-parent "$EF_CGROUP_PARENT" \
    --userns-base "$EF_USERNS_BASE" ${EF_FUNCLET_ARGS:-} 2>>"$EF_DATA/funclet.log" &
  FUNCLET_PID=$!
  for _ in $(seq 200); do
    [ -S "$EF_DATA/run/funclet.sock" ] && return 0
    kill -0 "$FUNCLET_PID" 2>/dev/null || { tail -n 20 "$EF_DATA/funclet.log" >&2; fail "funclet died at start"; }
    sleep 0.05
  done
  fail "funclet's socket did not appear"
}

# funclet_connected: whether the controller reports funclet as connected.
funclet_connected() {
  [[ "$(curl -fsS "$EF_BASE/healthz")" == *'"connected"'* ]]
}

# invoke NAME EVENT [OUT]: prints the HTTP status; the body goes to OUT (default $EF_DATA/out).
invoke() {
  curl -sS -o "${3:-$EF_DATA/out}" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions/$1/invocations" -d "$2"
}

# invoke_bg NAME EVENT TAG: runs invoke in the background; status in $EF_DATA/TAG.code, body in
# $EF_DATA/TAG.out; the pid is appended to BG_PIDS.
BG_PIDS=()
invoke_bg() {
  (invoke "$1" "$2" "$EF_DATA/$3.out" >"$EF_DATA/$3.code") &
  BG_PIDS+=($!)
}

# bg_running: whether a call started by invoke_bg is still running.
bg_running() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && return 0
  done
  return 1
}

wait_bg() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    wait "$pid" || true
  done
  BG_PIDS=()
}

# put_concurrency NAME N: PutFunctionConcurrency.
put_concurrency() {
  local code
  code=$(curl -sS -o "$EF_DATA/conc.json" -w '%{http_code}' -X PUT \
    "$EF_BASE/2017-10-31/functions/$1/concurrency" -d "{\"ReservedConcurrentExecutions\": $2}")
  [ "$code" = 200 ] || fail "PutFunctionConcurrency $1 $2 gave $code: $(cat "$EF_DATA/conc.json")"
}

# pool_count NAME [STATE]: the function's containers in the controller's pool (in STATE).
pool_count() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import json, sys
name, state = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
print(sum(1 for c in json.load(sys.stdin)
          if c["function"] == name and (state is None or c["state"] == state)))' "$@"
}

# pool_is NAME STATE N: whether the function has N containers in STATE ("any": in any state).
pool_is() {
  if [ "$2" = any ]; then
    [ "$(pool_count "$1")" = "$3" ]
  else
    [ "$(pool_count "$1" "$2")" = "$3" ]
  fi
}

# pool_ids NAME: the ids of the function's containers in the controller's pool.
pool_ids() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import json, sys
print(" ".join(sorted(c["id"] for c in json.load(sys.stdin) if c["function"] == sys.argv[1])))' "$1"
}

# funclet_list: funclet's container.list, one "id state pooled pid" line per container.
funclet_list() {
  "$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["containers"]:
    print(c["id"], c["state"], "pooled" if c["pooled"] else "held", c["pid"])'
}

# funclet_has ID: whether funclet still has the container.
funclet_has() {
  [ -n "$(funclet_list | awk -v id="$1" '$1 == id')" ]
}

# funclet_pid ID: the host pid of a container's runner.
funclet_pid() {
  funclet_list | awk -v id="$1" '$1 == id { print $4 }'
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  while ! "$@"; do
    [ $SECONDS -lt $end ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.1
  done
}

# reason FILE: the Reason of a 429 body.
reason() {
  json_get "$1" 'j.get("Reason")'
}
