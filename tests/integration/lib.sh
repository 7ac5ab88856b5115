# Shared helpers for the integration tests: a private pod (funclet + controller) in a temp data
# dir on a free port, torn down on exit, plus checks that nothing of it is left behind.
# Source it; it needs EF_BUILD_DIR and EF_SOURCE_DIR (CTest sets both).
set -euo pipefail

: "${EF_BUILD_DIR:?EF_BUILD_DIR must point at the build directory}"
: "${EF_SOURCE_DIR:?EF_SOURCE_DIR must point at the source directory}"

# fail MESSAGE: ends the test with status 1.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# note MESSAGE: a progress line on stderr.
note() {
  echo "--- $*" >&2
}

# require_root [WHY]: exits 77 (CTest's skip) unless root; WHY says what needs it.
require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: $(basename "$0") needs root (${1:-namespaces, cgroups, mounts})" >&2
    exit 77
  fi
}

# require_built PROGRAM...: fails unless every program is built in EF_BUILD_DIR.
require_built() {
  local bin
  for bin in "$@"; do
    [ -x "$EF_BUILD_DIR/$bin" ] || fail "$EF_BUILD_DIR/$bin is not built"
  done
}

# remove_cgroups NAME: removes every cgroup directory called NAME, and all below it, in every
# hierarchy, so that no test cgroup is left behind even when a test failed half-way.
remove_cgroups() {
  find /sys/fs/cgroup -depth -type d -name "$1" 2>/dev/null | while read -r d; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done || true
}

# remove_data DIR: removes a test's data directory unless something is still mounted below it
# (rm -rf would then reach into the mount).
remove_data() {
  grep -q " $1" /proc/self/mountinfo || rm -rf "$1"
}

# A --userns-base of this test's own, from its pid: funclet claims its containers' host ids
# host-wide and refuses to start on a range another funclet holds, so the funclets of tests that
# run at the same time (in other build directories) must not share the default. 511 blocks of
# 64 ranges of 65536 ids from 2^31 on; every test's funclet passes it.
EF_USERNS_BASE=${EF_USERNS_BASE:-$((2147483648 + ($$ % 511) * 4194304))}

# sched_policy_of PID: the scheduling policy of the process, as a number (0 SCHED_OTHER,
# 3 SCHED_BATCH): field 41 of /proc/PID/stat, counted after the command name, which may hold
# spaces and parentheses.
sched_policy_of() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $39 }'
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_funclet SOCKET LOG: until the funclet started as FUNCLET_PID answers on SOCKET (a killed
# funclet's socket file may still be there); fails, with its log, when it ends first.
wait_funclet() {
  local sock=$1 log=$2
  for _ in $(seq 200); do
    "$EF_BUILD_DIR/ef-rpc-call" --timeout 1000 "$sock" node.info >/dev/null 2>&1 && return 0
    kill -0 "$FUNCLET_PID" 2>/dev/null || { cat "$log" >&2; fail "funclet died at start"; }
    sleep 0.05
  done
  fail "funclet does not answer on $sock"
}

# pod_start: sets EF_DATA, EF_PORT, EF_BASE, EF_CGROUP_PARENT, FUNCLET_PID, CONTROLLER_PID.
# EF_CONTROLLER_ARGS (optional) holds extra controller flags, e.g. "--auth-keys FILE";
# EF_FUNCLET_ARGS (optional) extra funclet flags, e.g. "--max-containers 1".
pod_start() {
  EF_DATA=$(mktemp -d /tmp/ef-test.XXXXXX)
  EF_PORT=$(free_port)
  EF_BASE="http://127.0.0.1:$EF_PORT"
  EF_CGROUP_PARENT="ef-test-$$"
  "$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$EF_DATA/runtime" >/dev/null
  # shellcheck disable=SC2086 # word splitting of EF_FUNCLET_ARGS is intended
  "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$EF_DATA" --cgroup-parent "$EF_CGROUP_PARENT" \
    --userns-base "$EF_USERNS_BASE" ${EF_FUNCLET_ARGS:-} 2>"$EF_DATA/funclet.log" &
  FUNCLET_PID=$!
  for _ in $(seq 200); do
    [ -S "$EF_DATA/run/funclet.sock" ] && break
    kill -0 "$FUNCLET_PID" 2>/dev/null || { cat "$EF_DATA/funclet.log" >&2; fail "funclet died at start"; }
    sleep 0.05
  done
  [ -S "$EF_DATA/run/funclet.sock" ] || fail "funclet socket did not appear"
  # shellcheck disable=SC2086 # word splitting of EF_CONTROLLER_ARGS is intended
  "$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --port "$EF_PORT" \
    ${EF_CONTROLLER_ARGS:-} 2>"$EF_DATA/controller.log" &
  CONTROLLER_PID=$!
  for _ in $(seq 200); do
    curl -fsS "$EF_BASE/healthz" 2>/dev/null | grep -q '"connected"' && break
    kill -0 "$CONTROLLER_PID" 2>/dev/null || { cat "$EF_DATA/controller.log" >&2; fail "controller died at start"; }
    sleep 0.05
  done
  curl -fsS "$EF_BASE/healthz" | grep -q '"connected"' || fail "controller never saw funclet"
  trap pod_cleanup EXIT
}

# pod_stop: SIGTERM to both daemons, as an operator would, and waits for them.
pod_stop() {
  if [ -n "${CONTROLLER_PID:-}" ]; then
    kill -TERM "$CONTROLLER_PID" 2>/dev/null || true
    wait "$CONTROLLER_PID" || fail "controller exited with status $? on SIGTERM"
    CONTROLLER_PID=
  fi
  if [ -n "${FUNCLET_PID:-}" ]; then
    kill -TERM "$FUNCLET_PID" 2>/dev/null || true
    wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
    FUNCLET_PID=
  fi
}

# pod_remove: pod_stop, then removes the pod's cgroups and data dir, for a script that starts
# another pod afterwards (pod_cleanup, at exit, removes only the last one's).
pod_remove() {
  pod_stop
  remove_cgroups "$EF_CGROUP_PARENT"
  remove_data "$EF_DATA"
  EF_DATA=
}

pod_cleanup() {
  local rc=$?
  [ -n "${CONTROLLER_PID:-}" ] && kill -KILL "$CONTROLLER_PID" 2>/dev/null || true
  [ -n "${FUNCLET_PID:-}" ] && kill -TERM "$FUNCLET_PID" 2>/dev/null || true
  [ -n "${FUNCLET_PID:-}" ] && wait "$FUNCLET_PID" 2>/dev/null || true
  if [ $rc -ne 0 ] && [ -n "${EF_DATA:-}" ]; then
    echo "=== funclet.log" >&2; tail -n 40 "$EF_DATA/funclet.log" >&2 || true
    echo "=== controller.log" >&2; tail -n 40 "$EF_DATA/controller.log" >&2 || true
  fi
  remove_cgroups "$EF_CGROUP_PARENT"
  [ -n "${EF_DATA:-}" ] && remove_data "$EF_DATA"
  exit $rc
}

# assert_pod_gone PIDS...: no cgroup, mount or listed process of the pod remains.
assert_pod_gone() {
  local leftovers
  leftovers=$(find /sys/fs/cgroup -type d -name "$EF_CGROUP_PARENT" 2>/dev/null || true)
  [ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
  if grep -q " $EF_DATA" /proc/self/mountinfo; then
    fail "mounts left behind: $(grep " $EF_DATA" /proc/self/mountinfo)"
  fi
  local pid
  for pid in "$@"; do
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) left behind"
    fi
  done
  [ ! -e "$EF_DATA/run/funclet.sock" ] || fail "funclet socket left behind"
}

# create_function NAME RUNTIME HANDLER DIR [EXTRA_JSON_FIELDS]: prints the HTTP status.
create_function() {
  local name=$1 runtime=$2 handler=$3 dir=$4 extra=${5:-}
  local zip body
  zip=$(mktemp --suffix=.zip)
  body=$(mktemp)
  /usr/bin/python3 "$EF_SOURCE_DIR/deploy/lib/zip-dir.py" "$dir" "$zip"
  printf '{"FunctionName":"%s","Runtime":"%s","Handler":"%s","Code":{"ZipFile":"%s"}%s}' \
    "$name" "$runtime" "$handler" "$(base64 -w0 "$zip")" "$extra" >"$body"
  curl -sS -o "$EF_DATA/create-$name.json" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions" -H 'Content-Type: application/json' --data-binary @"$body"
  rm -f "$zip" "$body"
}

# json_get FILE EXPR: evaluates a Python expression on the parsed JSON `j`.
json_get() {
  /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
