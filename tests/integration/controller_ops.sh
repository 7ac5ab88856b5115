#!/usr/bin/env bash
# What an operator of the controller runs into: flags refused with their name and exit 2, a
# second controller on the same data dir or funclet socket refused (and the first one's warm
# container kept), the listen address logged as a URL (IPv6 bracketed) with a warning when the
# API is reachable beyond loopback without --auth-keys, and a SIGTERM during a synchronous
# invocation answered 503 ServiceException at once instead of a closed connection.
source "$(dirname "$0")/lib.sh"
require_root
require_built easyfaas-controller easyfaas-funclet easyfaas-runner
ctl=$EF_BUILD_DIR/easyfaas-controller

note "flags out of range exit 2 and name the flag"
# refused ARGS... PATTERN: the controller exits 2 at once with PATTERN on stderr.
refused() {
  local pattern=${*: -1} rc=0
  "$ctl" --data-dir /nonexistent/ef-ops "${@:1:$#-1}" 2>/tmp/ef-ops-flags.$$ || rc=$?
  [ "$rc" = 2 ] || fail "$* exited $rc, not 2: $(cat /tmp/ef-ops-flags.$$)"
  grep -q -- "$pattern" /tmp/ef-ops-flags.$$ || fail "$*: expected '$pattern', got: $(cat /tmp/ef-ops-flags.$$)"
}
refused --log-max-size 0 "--log-max-size: expected a size between 4K and 1G, got '0'"
refused --log-max-size 2G "--log-max-size: expected a size between 4K and 1G, got '2G'"
refused --log-files 101 "--log-files: expected an integer between 1 and 100"
refused --max-request-size 0 "--max-request-size: expected a size between 1 and 1G"
refused --max-request-size 4M --max-code-request-size 1M "--max-code-request-size must be at least --max-request-size"
refused --async-dead-letter-retention 367d "--async-dead-letter-retention must be between 1s and 366d"
refused --sched-policy fifo "--sched-policy must be batch or other, not 'fifo'"
rm -f /tmp/ef-ops-flags.$$
help=$("$ctl" --help)
grep -q "rotated. (4K to 1G, default: 1M)$" <<<"$help" || fail "--help shows no range of --log-max-size"
grep -q "included. (1 to 100, default: 3)$" <<<"$help" || fail "--help shows no range of --log-files"
grep -q "auth-keys" <<<"$(grep -- '--listen ADDR' <<<"$help")" || fail "--listen's help says nothing of --auth-keys"

pod_start
SLEEPER=$EF_SOURCE_DIR/tests/integration/functions/sleeper
[ "$(create_function nap python3.11 app.handler "$SLEEPER" ',"Timeout":60')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-nap.json")"
invoke() {
  curl -sS -o "$EF_DATA/out.json" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions/nap/invocations" -d "$1"
}
[ "$(invoke '{}')" = 200 ] || fail "invoke: $(cat "$EF_DATA/out.json")"
host=$(json_get "$EF_DATA/out.json" 'j["host"]')

note "the controller and all its threads run SCHED_BATCH (--sched-policy batch, the default)"
for task in /proc/"$CONTROLLER_PID"/task/*; do
  [ "$(sched_policy_of "$CONTROLLER_PID/task/${task##*/}")" = 3 ] ||
    fail "controller thread ${task##*/} has scheduling policy $(sched_policy_of "$CONTROLLER_PID/task/${task##*/}")"
done

note "a second controller on the same data dir is refused"
rc=0
timeout 20 "$ctl" --data-dir "$EF_DATA" --port "$(free_port)" 2>"$EF_DATA/second.log" || rc=$?
[ "$rc" = 1 ] || fail "a second controller on the data dir exited $rc: $(cat "$EF_DATA/second.log")"
grep -q "another controller (pid $CONTROLLER_PID) is running on the data dir" "$EF_DATA/second.log" ||
  fail "unexpected refusal: $(cat "$EF_DATA/second.log")"

note "a second controller on the same funclet socket (another data dir) is refused"
rc=0
timeout 20 "$ctl" --data-dir "$EF_DATA/other" --port "$(free_port)" \
  --funclet-socket "$EF_DATA/run/funclet.sock" 2>"$EF_DATA/third.log" || rc=$?
[ "$rc" = 1 ] || fail "a second controller on the funclet socket exited $rc: $(cat "$EF_DATA/third.log")"
grep -q "another controller (pid $CONTROLLER_PID) is using the funclet socket" "$EF_DATA/third.log" ||
  fail "unexpected refusal: $(cat "$EF_DATA/third.log")"

# Neither took the first one's warm container away: the same one serves, and counts on.
[ "$(invoke '{}')" = 200 ] || fail "invoke after the refusals: $(cat "$EF_DATA/out.json")"
[ "$(json_get "$EF_DATA/out.json" 'j["host"]')" = "$host" ] || fail "the warm container was replaced"
[ "$(json_get "$EF_DATA/out.json" 'j["count"]')" = 2 ] || fail "the warm container was reset"

note "the listen address is logged as a URL; beyond loopback without --auth-keys, a warning"
# listen_log ADDR: starts a controller on ADDR (its own data dir, no funclet), waits for its
# start-up lines and stops it; prints its log.
listen_log() {
  local dir=$EF_DATA/listen-$RANDOM pid
  mkdir -p "$dir"
  "$ctl" --data-dir "$dir" --listen "$1" --port 0 --funclet-socket "$dir/none.sock" 2>"$dir/log" &
  pid=$!
  for _ in $(seq 100); do
    grep -q "funclet is unavailable" "$dir/log" && break
    sleep 0.05
  done
  kill -TERM "$pid"
  wait "$pid" || fail "controller on $1 exited $? on SIGTERM: $(cat "$dir/log")"
  cat "$dir/log"
}
out=$(listen_log 127.0.0.1)
grep -q "listening on http://127.0.0.1:[0-9]" <<<"$out" || fail "no listening line: $out"
! grep -q "without --auth-keys" <<<"$out" || fail "warned on loopback: $out"
out=$(listen_log 0.0.0.0)
grep -q "WARN the API listens on 0.0.0.0 without --auth-keys" <<<"$out" || fail "no warning for 0.0.0.0: $out"
if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  out=$(listen_log ::1)
  grep -q "listening on http://\[::1\]:[0-9]" <<<"$out" || fail "IPv6 address not bracketed: $out"
  ! grep -q "without --auth-keys" <<<"$out" || fail "warned on ::1: $out"
  out=$(listen_log ::)
  grep -q "listening on http://\[::\]:[0-9]" <<<"$out" || fail "IPv6 address not bracketed: $out"
  grep -q "WARN the API listens on :: without --auth-keys" <<<"$out" || fail "no warning for '::': $out"
else
  note "no IPv6 loopback here; IPv6 listen addresses not checked"
fi

note "SIGTERM during a 20 s invocation answers it 503 ServiceException at once"
curl -sS -D "$EF_DATA/long.headers" -o "$EF_DATA/long.json" -w '%{http_code}' -X POST \
  "$EF_BASE/2015-03-31/functions/nap/invocations" -d '{"sleep": 20}' >"$EF_DATA/long.status" &
curl_pid=$!
sleep 1.5 # the invocation is in the warm container by now
start=$(date +%s%N)
kill -TERM "$CONTROLLER_PID"
wait "$curl_pid" || fail "curl failed: the connection was closed without an answer"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ "$(cat "$EF_DATA/long.status")" = 503 ] ||
  fail "status $(cat "$EF_DATA/long.status"): $(cat "$EF_DATA/long.json")"
grep -qi '^x-amzn-ErrorType: ServiceException' "$EF_DATA/long.headers" ||
  fail "no ServiceException: $(cat "$EF_DATA/long.headers")"
grep -qi '^x-amzn-RequestId: ' "$EF_DATA/long.headers" || fail "no request id: $(cat "$EF_DATA/long.headers")"
grep -q 'the controller is stopping' "$EF_DATA/long.json" || fail "body: $(cat "$EF_DATA/long.json")"
[ "$elapsed_ms" -lt 3000 ] || fail "the answer took ${elapsed_ms} ms after SIGTERM"
wait "$CONTROLLER_PID" || fail "controller exited with status $? on SIGTERM"
CONTROLLER_PID=
grep -q "is answered 503: the controller is stopping" "$EF_DATA/controller.log" ||
  fail "the 503 is not logged"
! grep -q "went away" "$EF_DATA/controller.log" || fail "the controller blamed the client"

# The lock went with the process: a new controller starts on the same data dir.
EF_PORT=$(free_port)
EF_BASE="http://127.0.0.1:$EF_PORT"
"$ctl" --data-dir "$EF_DATA" --port "$EF_PORT" 2>"$EF_DATA/controller.log" &
CONTROLLER_PID=$!
for _ in $(seq 200); do
  curl -fsS "$EF_BASE/healthz" 2>/dev/null | grep -q '"connected"' && break
  sleep 0.05
done
curl -fsS "$EF_BASE/healthz" | grep -q '"connected"' || fail "no controller after the first stopped: $(cat "$EF_DATA/controller.log")"
pod_stop
note "ok"
