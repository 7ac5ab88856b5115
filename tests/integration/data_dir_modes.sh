#!/usr/bin/env bash
# The data dir keeps the functions' secrets from the host's other users: controller.db (the
# Environment variables, the async events), the code zips, the extracted code and the function
# logs cannot be read through the host path by an unprivileged user, while the function still
# reads its own code inside its container (funclet mounts it there; only the mounted directory's
# own mode counts). Checked on a fresh data dir, then on one an operator (or an older version)
# left open to everyone, which both daemons make private again and say so in their logs.
source "$(dirname "$0")/lib.sh"
require_root
command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed"
pod_start
out=$EF_DATA/out

# as_nobody CMD...: runs CMD as uid and gid 65534 with no supplementary group.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# mode_of PATH: the permission bits, in octal.
mode_of() { stat -c %a "$1"; }

expect_mode() {
  local got
  got=$(mode_of "$1") || fail "$1 is missing"
  [ "$got" = "$2" ] || fail "$1 is mode $got, not $2"
}

# expect_private PATH: nobody can read it through the host path.
expect_private() {
  [ -e "$1" ] || fail "$1 is missing"
  if as_nobody cat "$1" >/dev/null 2>&1; then
    fail "an unprivileged user can read $1"
  fi
}

# So that a refusal above means the modes, not a setpriv that cannot run at all.
as_nobody cat /etc/hostname >/dev/null || fail "setpriv cannot run cat as uid 65534"

mkdir -p "$EF_DATA/src"
cat >"$EF_DATA/src/app.py" <<'PYEOF'
import os

# MARKER: the function reads this very file inside its container.


def handler(event, context):
    print("handled", event.get("n"))
    with open(__file__) as f:
        markers = f.read().count("MARKER")
    return {"secret": os.environ.get("SECRET"), "markers": markers, "uid": os.getuid()}
PYEOF

# invoke N: invokes the function and checks that it ran unprivileged, saw its secret and read
# its own code.
invoke() {
  local code
  code=$(curl -sS -o "$out" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions/secretive/invocations" -d "{\"n\": $1}")
  [ "$code" = 200 ] || fail "invocation $1 gave HTTP $code: $(cat "$out")"
  [ "$(json_get "$out" 'j["secret"]')" = x ] || fail "the function did not see its secret: $(cat "$out")"
  [ "$(json_get "$out" 'j["markers"] >= 2')" = True ] ||
    fail "the function could not read its own code: $(cat "$out")"
  [ "$(json_get "$out" 'j["uid"]')" != 0 ] || fail "the function runs as root"
}

# wait_log N: waits for invocation N's output in the function's log file.
wait_log() {
  for _ in $(seq 100); do
    grep -q "handled $1" "$EF_DATA/logs/secretive.log" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "invocation $1's output is not in $EF_DATA/logs/secretive.log"
}

# expect_all_private: the modes of everything secret, and nobody reads any of it.
expect_all_private() {
  expect_mode "$EF_DATA" 700
  expect_mode "$EF_DATA/controller.db" 600
  local side
  for side in "$EF_DATA/controller.db-wal" "$EF_DATA/controller.db-shm"; do
    [ ! -e "$side" ] || expect_mode "$side" 600
  done
  expect_mode "$EF_DATA/code/zips" 700
  expect_mode "$zip" 600
  expect_mode "$EF_DATA/logs" 700
  expect_mode "$EF_DATA/logs/secretive.log" 600
  # The extracted code keeps the modes the container's unprivileged user reads it with.
  expect_mode "$EF_DATA/code/extracted" 755
  expect_mode "$handler" 644
  expect_mode "$(dirname "$handler")" 755
  expect_private "$EF_DATA/controller.db"
  expect_private "$zip"
  expect_private "$handler"
  expect_private "$EF_DATA/logs/secretive.log"
  if as_nobody ls "$EF_DATA" >/dev/null 2>&1; then
    fail "an unprivileged user can list $EF_DATA"
  fi
  # The secret itself is in the database, in plain text: what the modes protect.
  grep -aq SECRET "$EF_DATA/controller.db" "$EF_DATA/controller.db-wal" 2>/dev/null ||
    fail "the secret is not where this test looks for it"
}

note "a fresh data dir: everything secret is private from the start"
status=$(create_function secretive python3.11 app.handler "$EF_DATA/src" \
  ',"Environment":{"Variables":{"SECRET":"x"}}')
[ "$status" = 201 ] || fail "CreateFunction gave $status: $(cat "$EF_DATA/create-secretive.json")"
invoke 1
wait_log 1
zip=$(find "$EF_DATA/code/zips" -name '*.zip')
handler=$(find "$EF_DATA/code/extracted" -name app.py)
if [ -z "$zip" ] || [ -z "$handler" ]; then fail "the code is not in $EF_DATA/code"; fi
expect_all_private
if grep -q "open to other users" "$EF_DATA/controller.log" "$EF_DATA/funclet.log"; then
  fail "a data dir that was private already was reported as tightened"
fi

note "a data dir left open to everyone is made private again, and the daemons say so"
pod_stop
# (The zips dir is what keeps the zips an older version wrote 0644 private: they are not chmodded
# one by one.)
chmod 0755 "$EF_DATA" "$EF_DATA/logs" "$EF_DATA/code/zips"
chmod 0644 "$EF_DATA/controller.db" "$EF_DATA/logs/secretive.log"
as_nobody cat "$EF_DATA/controller.db" >/dev/null || fail "the loosened database is not readable"
# shellcheck disable=SC2086 # word splitting of EF_FUNCLET_ARGS is intended, as in pod_start
"$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$EF_DATA" --cgroup-parent "$EF_CGROUP_PARENT" \
  --userns-base "$EF_USERNS_BASE" ${EF_FUNCLET_ARGS:-} 2>"$EF_DATA/funclet.log" &
FUNCLET_PID=$!
for _ in $(seq 200); do
  [ -S "$EF_DATA/run/funclet.sock" ] && break
  kill -0 "$FUNCLET_PID" 2>/dev/null || fail "funclet died at its restart"
  sleep 0.05
done
grep -q "data dir $EF_DATA was mode 0755, open to other users; made it 0700" "$EF_DATA/funclet.log" ||
  fail "funclet did not say it made the data dir private: $(cat "$EF_DATA/funclet.log")"
# The controller finds it private already (funclet came first); open it again to see its line.
chmod 0755 "$EF_DATA"
"$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --port "$EF_PORT" \
  2>"$EF_DATA/controller.log" &
CONTROLLER_PID=$!
for _ in $(seq 200); do
  curl -fsS "$EF_BASE/healthz" 2>/dev/null | grep -q '"connected"' && break
  kill -0 "$CONTROLLER_PID" 2>/dev/null || fail "the controller died at its restart"
  sleep 0.05
done
curl -fsS "$EF_BASE/healthz" | grep -q '"connected"' || fail "the controller never saw funclet again"
[ "$(grep -c "data dir $EF_DATA was mode 0755, open to other users; made it 0700" \
  "$EF_DATA/controller.log")" = 1 ] ||
  fail "the controller did not say, once, that it made the data dir private: $(cat "$EF_DATA/controller.log")"
invoke 2
wait_log 2
expect_all_private
pod_stop
