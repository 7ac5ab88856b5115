#!/usr/bin/env bash
# Function logs through the whole pod: every invocation's output, framed by Lambda's START /
# END / REPORT lines (Init Duration on a cold start, Max Memory Used, Status for timeouts and
# crashes), is kept in <data>/logs/<name>.log and read back with
# GET /v1/functions/{name}/logs?tail=N; X-Amz-Log-Result is the base64 of the last 4 KB of the
# same entry; the log survives a controller restart and is rotated by size (--log-max-size,
# --log-files); Python's logging module writes Lambda's format to it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runtime_lib.sh"
require_root
pod_start
out=$EF_DATA/out
src=$EF_DATA/src
mkdir -p "$src"
cat >"$src/app.py" <<'PY'
import sys
import time

print("initialising the module")


def handler(event, context):
    a = event.get("action")
    print("to stdout: call", event.get("n"))
    print("to stderr: call", event.get("n"), file=sys.stderr)
    if a == "lots":
        for i in range(200):
            print("line %03d %s" % (i, "é" * 20))
        print("the very last line")
    if a == "timeout":
        print("going to sleep")
        time.sleep(30)
    if a == "modules":
        return {"logging": "logging" in sys.modules}
    if a == "crash":
        print("about to crash")
        sys.stdout.flush()
        import os
        os._exit(9)
    return {"n": event.get("n")}
PY
status=$(create_function chatty python3.12 app.handler "$src" ',"MemorySize":192,"Timeout":1')
[ "$status" = 201 ] || fail "CreateFunction gave $status: $(cat "$EF_DATA/create-chatty.json")"
status=$(create_function silent python3.12 app.handler "$src")
[ "$status" = 201 ] || fail "CreateFunction gave $status"

# logs NAME [QUERY]: the log text in $out.log; prints the HTTP status.
logs() {
  curl -sS -D "$out.lh" -o "$out.log" -w '%{http_code}' "$EF_BASE/v1/functions/$1/logs${2:-}"
}

note "a function never invoked has an empty log; an unknown one is 404"
[ "$(logs silent)" = 200 ] && [ ! -s "$out.log" ] || fail "the log of a function never run: $(cat "$out.log")"
[ "$(logs nosuch)" = 404 ] || fail "the log of an unknown function is not 404"
[ "$(logs chatty '?tail=0')" = 400 ] || fail "tail=0 is not refused"
[ "$(logs chatty '?tail=many')" = 400 ] || fail "tail=many is not refused"

note "a cold and a warm invocation"
expect_ok chatty '{"n":1}'
rid1=$(header X-Amzn-RequestId)
expect_ok chatty '{"n":2}'
rid2=$(header X-Amzn-RequestId)
[ "$(logs chatty '?tail=100')" = 200 ] || fail "GET logs: $(cat "$out.log")"
grep -qi '^content-type: text/plain' "$out.lh" || fail "the log is not text/plain"
[ "$(grep -c '^START RequestId: ' "$out.log")" = 2 ] || fail "two START lines expected: $(cat "$out.log")"
grep -q "^START RequestId: $rid1 Version: \$LATEST$" "$out.log" || fail "no START for $rid1"
grep -q "^END RequestId: $rid2$" "$out.log" || fail "no END for $rid2"
/usr/bin/python3 - "$out.log" "$rid1" "$rid2" <<'PY' || fail "the log entries are not framed as Lambda's: $(cat "$out.log")"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
rid1, rid2 = sys.argv[2], sys.argv[3]
entries = re.findall(r"START RequestId: (\S+) Version: \$LATEST\n(.*?)END RequestId: \1\n(REPORT [^\n]*)\n",
                     text, re.S)
assert [e[0] for e in entries] == [rid1, rid2], entries
(_, out1, rep1), (_, out2, rep2) = entries
# The cold start's entry holds what the module printed while loading.
assert "initialising the module\n" in out1 and "initialising" not in out2, (out1, out2)
assert "to stdout: call 1\n" in out1 and "to stderr: call 1\n" in out1, out1
assert "to stdout: call 2\n" in out2 and "call 1" not in out2, out2
pat = (r"REPORT RequestId: %s\tDuration: [0-9]+\.[0-9]{2} ms\tBilled Duration: [0-9]+ ms\t"
       r"Memory Size: 192 MB\tMax Memory Used: ([0-9]+) MB%s\t$")
m1 = re.fullmatch(pat % (rid1, r"\tInit Duration: [0-9]+\.[0-9]{2} ms"), rep1)
m2 = re.fullmatch(pat % (rid2, ""), rep2)
assert m1 and m2, (rep1, rep2)
# Python's own resident memory: a few MB, below the function's 192 MB.
assert 3 <= int(m1.group(1)) <= 192 and int(m1.group(1)) <= int(m2.group(1)), (rep1, rep2)
PY
[ "$(logs chatty '?tail=1')" = 200 ] && grep -q "^REPORT RequestId: $rid2" "$out.log" && [ "$(wc -l <"$out.log")" = 1 ] \
  || fail "tail=1 is not the last REPORT line: $(cat "$out.log")"
[ -f "$EF_DATA/logs/chatty.log" ] || fail "no $EF_DATA/logs/chatty.log"
[ "$(stat -c %a "$EF_DATA/logs/chatty.log")" = 600 ] || fail "the log file is not mode 0600"

note "X-Amz-Log-Result is the base64 of the last 4 KB of the entry"
expect_ok chatty '{"n":3,"action":"lots"}' -H 'X-Amz-Log-Type: Tail'
header X-Amz-Log-Result | base64 -d >"$out.tail"
[ "$(stat -c %s "$out.tail")" = 4096 ] || fail "the tail is $(stat -c %s "$out.tail") bytes, not 4096"
[ "$(logs chatty '?tail=10000')" = 200 ] || fail "GET logs"
tail -c 4096 "$out.log" | cmp -s - "$out.tail" || fail "the tail is not the end of the stored log"
grep -q '^the very last line$' "$out.tail" || fail "the tail lacks the last output line"
grep -q '^line 000 ' "$out.log" || fail "the stored log lacks the first output line"

note "a timeout and a crash are logged as Lambda logs them"
expect_error chatty '{"n":4,"action":"timeout"}' - 'Task timed out after 1\.00 seconds$'
expect_error chatty '{"n":5,"action":"crash"}' Runtime.ExitError 'exit status 9$'
[ "$(logs chatty '?tail=40')" = 200 ] || fail "GET logs"
/usr/bin/python3 - "$out.log" <<'PY' || fail "timeout and crash entries: $(cat "$out.log")"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
assert re.search(r"going to sleep\n[0-9T:.-]+Z \S+ Task timed out after 1\.00 seconds\nEND RequestId: \S+\n"
                 r"REPORT [^\n]*\tStatus: timeout\t\n", text), "timeout"
assert re.search(r"about to crash\nRequestId: \S+ Error: Runtime exited with error: exit status 9\n"
                 r"Runtime\.ExitError\nEND RequestId: \S+\nREPORT [^\n]*\tStatus: error\t"
                 r"Error Type: Runtime\.ExitError\t\n", text), "crash"
PY

note "the log survives a controller restart; rotation by --log-max-size and --log-files"
before=$(wc -c <"$EF_DATA/logs/chatty.log")
kill -TERM "$CONTROLLER_PID"
wait "$CONTROLLER_PID" || fail "controller exited with status $? on SIGTERM"
"$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --port "$EF_PORT" \
  --log-max-size 16K --log-files 2 2>>"$EF_DATA/controller.log" &
CONTROLLER_PID=$!
for _ in $(seq 200); do
  curl -fsS "$EF_BASE/healthz" 2>/dev/null | grep -q '"connected"' && break
  sleep 0.05
done
[ "$(logs chatty '?tail=10000')" = 200 ] && [ "$(wc -c <"$out.log")" = "$before" ] \
  || fail "the log was not kept across the restart"
for i in $(seq 6); do
  expect_ok chatty "{\"n\":$((10 + i)),\"action\":\"lots\"}"
done
[ -f "$EF_DATA/logs/chatty.log.1" ] || fail "the log was not rotated"
[ ! -e "$EF_DATA/logs/chatty.log.2" ] || fail "more than --log-files 2 files kept"
for f in "$EF_DATA/logs/chatty.log" "$EF_DATA/logs/chatty.log.1"; do
  [ "$(stat -c %s "$f")" -le 16384 ] || fail "$f is above --log-max-size: $(stat -c %s "$f")"
done
[ "$(logs chatty '?tail=10000')" = 200 ] || fail "GET logs"
[ "$(wc -c <"$out.log")" = $(($(stat -c %s "$EF_DATA/logs/chatty.log") + $(stat -c %s "$EF_DATA/logs/chatty.log.1"))) ] \
  || fail "the read does not span both files"
grep -q 'to stdout: call 16$' "$out.log" || fail "the last invocation is missing"
! grep -q 'call 1$' "$out.log" || fail "the oldest entries were not rotated away"
"$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --port 0 --log-max-size 1K 2>"$out.err" \
  && fail "--log-max-size 1K was accepted"
grep -q -- "--log-max-size: expected a size between 4K and 1G" "$out.err" || fail "a bad --log-max-size gives no clear error: $(cat "$out.err")"

note "Python logging: Lambda's handler on the root logger, unless the function configured it"
mkdir -p "$src/pylog" "$src/pylogconf"
cat >"$src/pylog/app.py" <<'PY'
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    logger.info("an info line for %s", context.aws_request_id)
    logger.debug("a debug line")
    logging.getLogger("mod").warning("a warning")
    return {"handlers": len(logger.handlers)}
PY
cat >"$src/pylogconf/app.py" <<'PY'
import logging

logging.basicConfig(format="OWN:%(levelname)s:%(message)s", level=logging.INFO)


def handler(event, context):
    logging.info("configured by the function")
    return {"handlers": len(logging.getLogger().handlers)}
PY
for f in pylog pylogconf; do
  status=$(create_function $f python3.12 app.handler "$src/$f")
  [ "$status" = 201 ] || fail "CreateFunction $f gave $status: $(cat "$EF_DATA/create-$f.json")"
done
tab=$'\t'
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
for i in 1 2; do
  expect_ok pylog '{}' -H 'X-Amz-Log-Type: Tail'
  rid=$(header X-Amzn-RequestId)
  header X-Amz-Log-Result | base64 -d >"$out.tail"
  [ "$(json_get "$out" 'j["handlers"]')" = 1 ] || fail "the root logger has not one handler: $(cat "$out")"
  grep -Eq "^\[INFO\]$tab$iso$tab$rid${tab}an info line for $rid\$" "$out.tail" \
    || fail "logger.info is not in Lambda's format with the request id: $(cat "$out.tail")"
  grep -Eq "^\[WARNING\]$tab$iso$tab$rid${tab}a warning\$" "$out.tail" \
    || fail "logger.warning is not in Lambda's format: $(cat "$out.tail")"
  ! grep -q 'a debug line' "$out.tail" || fail "logger.debug came out at level INFO"
done
expect_ok pylogconf '{}' -H 'X-Amz-Log-Type: Tail'
header X-Amz-Log-Result | base64 -d >"$out.tail"
[ "$(json_get "$out" 'j["handlers"]')" = 1 ] || fail "a configured root logger got another handler: $(cat "$out")"
grep -q '^OWN:INFO:configured by the function$' "$out.tail" || fail "the function's own format is not used: $(cat "$out.tail")"
[ "$(grep -c 'configured by the function' "$out.tail")" = 1 ] || fail "the line came out twice: $(cat "$out.tail")"
expect_ok silent '{"action":"modules"}'
[ "$(json_get "$out" 'j["logging"]')" = False ] || fail "the runtime imported logging for a function that does not use it"

note "stop and check nothing is left"
runner_pids=$(funclet_containers | awk '{ print $2 }')
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
