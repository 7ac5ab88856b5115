#!/usr/bin/env bash
# The README's first command: deploy/all-in-one.sh on a private data dir and port. It must
# register `hello`, print a curl line that works, and leave nothing behind after SIGTERM.
source "$(dirname "$0")/lib.sh"
require_root
EF_DATA=$(mktemp -d /tmp/ef-aio.XXXXXX)
EF_PORT=$(free_port)
EF_CGROUP_PARENT="easyfaas-$EF_PORT"
log=$EF_DATA.log
cleanup() {
  local rc=$?
  [ -n "${aio_pid:-}" ] && kill -TERM "$aio_pid" 2>/dev/null && wait "$aio_pid" 2>/dev/null
  [ $rc -ne 0 ] && tail -n 40 "$log" >&2
  rm -rf "$EF_DATA" "$log"
  exit $rc
}
trap cleanup EXIT

setsid "$EF_SOURCE_DIR/deploy/all-in-one.sh" --data-dir "$EF_DATA" --port "$EF_PORT" \
  --build-dir "$EF_BUILD_DIR" >"$log" 2>&1 &
aio_pid=$!
for _ in $(seq 600); do
  grep -q 'Press Ctrl-C to stop' "$log" && break
  kill -0 "$aio_pid" 2>/dev/null || fail "all-in-one.sh exited early"
  sleep 0.1
done
line=$(grep -o "curl -s -X POST http://127.0.0.1:$EF_PORT/2015-03-31/functions/hello/invocations.*" "$log") \
  || fail "no curl line printed"
out=$(eval "$line")
grep -q '"Hello, EasyFaaS!"' <<<"$out" || fail "the printed curl line gave: $out"

runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
kill -TERM "$aio_pid"
wait "$aio_pid" || fail "all-in-one.sh exited with status $? on SIGTERM"
aio_pid=
assert_pod_gone $runner_pids
echo PASS
