# Helpers of the tests that run funclet on its own and drive it over its RPC socket as the
# controller would (funclet_containers.sh, funclet_pool.sh, funclet_leak.sh, isolation.sh).
# Source it after lib.sh. The test sets DATA (funclet's data dir), FUNCLET_PID (empty while no
# funclet runs) and defines call METHOD PARAMS, its RPC call with the timeout it wants.

# json EXPR: evaluates a Python expression on the JSON object `j` read from stdin.
json() { /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# call_error METHOD PARAMS: prints the error code of a call that must fail.
call_error() {
  local out
  if out=$(call "$@" 2>&1); then
    fail "$1 $2 succeeded: $out"
  fi
  echo "$out" | json 'j["code"]'
}

# stop_funclet: SIGTERM to funclet, as an operator would; it must exit with status 0.
stop_funclet() {
  kill -TERM "$FUNCLET_PID"
  wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
  FUNCLET_PID=
}

# kill_funclet: for an EXIT trap, SIGTERM to funclet when one runs and waits for it, whatever
# its status.
kill_funclet() {
  if [ -n "$FUNCLET_PID" ]; then
    kill -TERM "$FUNCLET_PID" 2>/dev/null || true
    wait "$FUNCLET_PID" 2>/dev/null || true
  fi
}

# show_funclet_log LINES: the last LINES lines of funclet's log on stderr, for a failed test.
show_funclet_log() {
  echo "=== funclet.log" >&2
  tail -n "$1" "$DATA/funclet.log" >&2 || true
}

# settled CMD...: the output of CMD once it no longer changes (two readings 0.1 s apart agree,
# within 10 s). funclet makes the host side of its next container (directory, mounts, cgroups)
# on a thread of its own after each create, so counts of those settle shortly after one.
settled() {
  local last now
  last=$("$@")
  for _ in $(seq 100); do
    sleep 0.1
    now=$("$@")
    [ "$now" = "$last" ] && break
    last=$now
  done
  echo "$now"
}

# parts_ahead: the hidden name (".<12 hex digits>") of the next container's host side that
# funclet made ahead in run/containers (parts.h), or nothing.
parts_ahead() {
  ls -A "$DATA/run/containers" | grep -E '^\.[0-9a-f]{12}$' || true
}
