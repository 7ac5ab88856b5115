# Helpers of the tests that run `easyfaas-runner init` on the host as an ordinary process and
# drive it over JSON-RPC as the controller would (runner_init.sh, runner_reuse.sh,
# runtime_concurrency.sh, runtime_concurrency_lang.sh). Source it after lib.sh, then call
# runner_setup.

RUNNER="$EF_BUILD_DIR/easyfaas-runner"
RPC="$EF_BUILD_DIR/ef-rpc-call"
PY=/usr/bin/python3

# runner_setup NAME: skips without root (the runtime runs as uid 1001), checks that the runner
# and ef-rpc-call are built, and makes TMP, a world-readable scratch directory
# /tmp/NAME.XXXXXX that runner_cleanup removes on exit.
runner_setup() {
  require_root "it starts the runtime as uid 1001"
  require_built easyfaas-runner ef-rpc-call
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 0755 "$TMP"
  PIDS=()
  trap runner_cleanup EXIT
}

# runner_cleanup: the EXIT trap. Kills every runner start_runner started (a stopped one too),
# prints the tail of every non-empty log and error file in TMP when the test failed, and removes
# TMP.
runner_cleanup() {
  local rc=$? pid f
  for pid in "${PIDS[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ $rc -ne 0 ]; then
    for f in "$TMP"/*.log "$TMP"/*.err; do
      [ -s "$f" ] && { echo "=== $f" >&2; tail -n 40 "$f" >&2; }
    done
  fi
  rm -rf "$TMP"
}

# start_runner NAME TASK_DIR: starts `init` with a fresh listening socket as fd 3, its stderr in
# TMP/NAME.log, and the flags in RUNNER_ARGS (if any); sets SOCK, PORT (its Runtime API port) and
# RUNNER_PID.
start_runner() {
  SOCK="$TMP/$1.sock"
  PORT=$(free_port)
  # shellcheck disable=SC2086 # RUNNER_ARGS holds extra flags, split on purpose
  $PY - "$SOCK" "$RUNNER" init --rpc-fd 3 --uid 1001 --gid 1001 --api-port "$PORT" \
    --runtime-dir "$TMP/runtime" --task-dir "$2" ${RUNNER_ARGS:-} 2>"$TMP/$1.log" <<'PYEOF' &
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o600)
s.listen(16)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
os.execv(sys.argv[2], sys.argv[2:])
PYEOF
  RUNNER_PID=$!
  PIDS+=("$RUNNER_PID")
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && break
    sleep 0.02
  done
  [ -S "$SOCK" ] || fail "the socket of runner $1 did not appear"
}

# stop_runner NAME: SIGTERM to the last runner started; it must exit with status 0.
stop_runner() {
  kill -TERM "$RUNNER_PID"
  wait "$RUNNER_PID" || fail "runner $1 exited with status $? on SIGTERM"
}

# rpc METHOD PARAMS: prints the result; the call must succeed.
rpc() {
  "$RPC" --timeout 20000 "$SOCK" "$@" || fail "rpc $1 failed"
}

# rpc_error METHOD PARAMS: prints the error object; the call must fail.
rpc_error() {
  local out
  if out=$("$RPC" --timeout 20000 "$SOCK" "$@" 2>&1); then
    fail "rpc $1 succeeded but should have failed: $out"
  fi
  echo "$out"
}

# pid_of JSON: the "pid" field of a runtime.start result.
pid_of() {
  $PY -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$1"
}

# expect JSON EXPR WHAT: EXPR is Python over `r` (the parsed JSON) and `p` (r["payload"] parsed
# as JSON, when it is a JSON string).
expect() {
  $PY - "$1" "$2" <<'PYEOF' || fail "$3: expected $2, got: $1"
import json, sys
r = json.loads(sys.argv[1])
p = None
if isinstance(r, dict) and isinstance(r.get("payload"), str):
    try:
        p = json.loads(r["payload"])
    except ValueError:
        pass
sys.exit(0 if eval(sys.argv[2]) else 1)
PYEOF
}

# answers PREFIX N EXPR WHAT: EXPR (Python over rs, the answers in TMP/PREFIX-1.json to
# TMP/PREFIX-N.json, and ps, their payloads parsed; re is imported) holds.
answers() {
  $PY - "$TMP" "$1" "$2" "$3" <<'PYEOF' || fail "answers of $1: $4"
import json, re, sys
tmp, prefix, n, expr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rs = [json.load(open("%s/%s-%d.json" % (tmp, prefix, i))) for i in range(1, n + 1)]
ps = [json.loads(r["payload"]) for r in rs]
ok = eval(expr)
if not ok:
    print(json.dumps(rs)[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)
PYEOF
}

# check_runner_logs LOG...: fails when a runner's log shows its event loop leaked handles at
# exit, or a sanitizer report (-DEF_SANITIZE=address,undefined builds).
check_runner_logs() {
  local f
  for f in "$@"; do
    grep -q "handles still open" "$f" && fail "$f: the runner's event loop leaked handles"
    grep -Eq "Sanitizer|runtime error:" "$f" && fail "$f: sanitizer report"
  done
  return 0
}
