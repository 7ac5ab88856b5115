#!/usr/bin/env bash
# The README's first command: deploy/all-in-one.sh on a private data dir and port. It must
# register `hello`, print a curl line that works, and leave nothing behind after SIGTERM. A
# second instance runs side by side on another port with a bridge, a network and host ids of its
# own, and Ctrl-C (SIGINT to its whole process group, as a terminal sends it) stops it with
# status 0. A bad --port is refused before anything happens.
source "$(dirname "$0")/lib.sh"
require_root
EF_DATA=$(mktemp -d /tmp/ef-aio.XXXXXX)
EF_DATA2=$(mktemp -d /tmp/ef-aio2.XXXXXX)
log=$EF_DATA.log
log2=$EF_DATA2.log
cleanup() {
  local rc=$?
  [ -n "${aio_pid:-}" ] && kill -TERM "$aio_pid" 2>/dev/null && wait "$aio_pid" 2>/dev/null
  [ -n "${aio2_pid:-}" ] && kill -TERM "$aio2_pid" 2>/dev/null && wait "$aio2_pid" 2>/dev/null
  if [ $rc -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "=== second instance" >&2
    tail -n 40 "$log2" >&2
  fi
  rm -rf "$EF_DATA" "$log" "$EF_DATA2" "$log2"
  exit $rc
}
trap cleanup EXIT

for bad in 0 65536 123456 8o; do
  out=$("$EF_SOURCE_DIR/deploy/all-in-one.sh" --port "$bad" 2>&1) && fail "--port $bad accepted"
  grep -q 'port must be a number from 1 to 65535' <<<"$out" || fail "--port $bad: $out"
done

# Two ports whose derived host ids and networks differ (port mod 1023 and mod 256).
EF_PORT=$(free_port)
for _ in $(seq 20); do
  EF_PORT2=$(free_port)
  [ $((EF_PORT % 1023)) -ne $((EF_PORT2 % 1023)) ] && [ $((EF_PORT % 256)) -ne $((EF_PORT2 % 256)) ] &&
    [ "$EF_PORT" -ne "$EF_PORT2" ] && break
done

# start_aio VAR DATA PORT LOG: starts an instance in a session (and process group) of its own,
# as a terminal runs its foreground job, and sets VAR to its pid; returns once it is ready.
# SIGINT goes back to its default first: a background job of a script starts with SIGINT
# ignored, and bash cannot trap a signal ignored on entry, so Ctrl-C would not be emulated.
start_aio() {
  /usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])' "$EF_SOURCE_DIR/deploy/all-in-one.sh" --data-dir "$2" \
    --port "$3" --build-dir "$EF_BUILD_DIR" >"$4" 2>&1 &
  printf -v "$1" '%s' "$!"
  for _ in $(seq 600); do
    grep -q 'Press Ctrl-C to stop' "$4" && return 0
    kill -0 "${!1}" 2>/dev/null || fail "all-in-one.sh on port $3 exited early"
    sleep 0.1
  done
  fail "all-in-one.sh on port $3 did not get ready"
}
# funclet_args DATA: the command line of the funclet running on DATA.
funclet_args() {
  local p
  for p in $(pgrep -x easyfaas-funcle); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--data-dir $1 " &&
      tr '\0' ' ' <"/proc/$p/cmdline"
  done
  return 0
}

start_aio aio_pid "$EF_DATA" "$EF_PORT" "$log"
line=$(grep -o "curl -s -X POST http://127.0.0.1:$EF_PORT/2015-03-31/functions/hello/invocations.*" "$log") \
  || fail "no curl line printed"
out=$(eval "$line")
grep -q '"Hello, EasyFaaS!"' <<<"$out" || fail "the printed curl line gave: $out"

start_aio aio2_pid "$EF_DATA2" "$EF_PORT2" "$log2"
line2=$(grep -o "curl -s -X POST http://127.0.0.1:$EF_PORT2/2015-03-31/functions/hello/invocations.*" "$log2") \
  || fail "no curl line printed by the second instance"
grep -q '"Hello, EasyFaaS!"' <<<"$(eval "$line2")" || fail "the second instance does not answer"
grep -q '"Hello, EasyFaaS!"' <<<"$(eval "$line")" || fail "the first instance stopped answering"
args=$(funclet_args "$EF_DATA")
args2=$(funclet_args "$EF_DATA2")
grep -q -- "--bridge-name ef$EF_PORT --bridge-cidr 172.31.[0-9]*.0/24 --userns-base auto " <<<"$args" ||
  fail "funclet of port $EF_PORT: $args"
grep -q -- "--bridge-name ef$EF_PORT2 --bridge-cidr 172.31.[0-9]*.0/24 --userns-base auto " <<<"$args2" ||
  fail "funclet of port $EF_PORT2: $args2"
# funclet_pid DATA: the pid of the funclet running on DATA.
funclet_pid() {
  local p
  for p in $(pgrep -x easyfaas-funcle); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--data-dir $1 " && echo "$p"
  done
  return 0
}
# claimed PID: the host ids funclet PID holds in /run/easyfaas/userns.lock, "first last".
claimed() {
  awk -v pid="$1" -v ino="$(stat -c %i /run/easyfaas/userns.lock)" \
    '$2 == "POSIX" && $5 == pid && $6 ~ (":" ino "$") { print $7, $8 }' /proc/locks
}
read -r first1 last1 <<<"$(claimed "$(funclet_pid "$EF_DATA")")"
read -r first2 last2 <<<"$(claimed "$(funclet_pid "$EF_DATA2")")"
[ -n "$first1" ] && [ -n "$first2" ] || fail "a funclet holds no host ids: '$first1-$last1', '$first2-$last2'"
[ "$last1" -lt "$first2" ] || [ "$last2" -lt "$first1" ] ||
  fail "the two pods' host ids overlap: $first1-$last1 and $first2-$last2"
cidr=$(grep -o -- '--bridge-cidr [^ ]*' <<<"$args")
[ "$cidr" != "$(grep -o -- '--bridge-cidr [^ ]*' <<<"$args2")" ] || fail "both pods got $cidr"

note "Ctrl-C stops the second instance with status 0"
runner_pids2=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA2/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
kill -INT -- "-$aio2_pid"
wait "$aio2_pid" || fail "all-in-one.sh exited with status $? on Ctrl-C"
aio2_pid=
grep -q "unexpectedly" "$log2" && fail "Ctrl-C was taken for a failure: $(tail -n 5 "$log2")"
EF_DATA=$EF_DATA2 EF_CGROUP_PARENT="easyfaas-$EF_PORT2" assert_pod_gone $runner_pids2
grep -q '"Hello, EasyFaaS!"' <<<"$(eval "$line")" || fail "the first instance stopped with the second"

note "SIGTERM stops the first instance with status 0"
runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
kill -TERM "$aio_pid"
wait "$aio_pid" || fail "all-in-one.sh exited with status $? on SIGTERM"
aio_pid=
EF_CGROUP_PARENT="easyfaas-$EF_PORT" assert_pod_gone $runner_pids
echo PASS
