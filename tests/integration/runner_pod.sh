#!/usr/bin/env bash
# The runner's side of two Lambda behaviours, through the whole pod: what a Python function's
# runtime writes between invocations (a background printer it started, a thread's late print)
# is in the function's log, in the next invocation's entry before that invocation's own output;
# and a custom runtime that posts /init/error and then sleeps on is ended by its runner, so the
# controller replaces the container and every invocation runs init again, as in Lambda.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runtime_lib.sh"
require_root
command -v curl >/dev/null || { echo "SKIP: curl is not installed (the custom bootstrap needs it)" >&2; exit 77; }
pod_start
out=$EF_DATA/out

src=$EF_DATA/src
mkdir -p "$src" "$EF_DATA/broken"
cat >"$src/app.py" <<'PY'
import subprocess
import threading


def handler(event, context):
    if event.get("action") == "background":
        subprocess.Popen(["/bin/sh", "-c", "while :; do echo bg-tick; sleep 0.2; done"])
        threading.Timer(0.5, lambda: print("late from a thread", flush=True)).start()
        return "started"
    print("handling call", event.get("n"))
    return event.get("n")
PY
cat >"$EF_DATA/broken/bootstrap" <<'SH'
#!/bin/sh
echo "init run"
curl -sS -o /dev/null -X POST -H "Lambda-Runtime-Function-Error-Type: Custom.InitBroken" \
  -d '{"errorType":"Custom.InitBroken","errorMessage":"no config"}' \
  "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"
exec sleep 3600
SH
chmod 0755 "$EF_DATA/broken/bootstrap"
[ "$(create_function bg python3.12 app.handler "$src")" = 201 ] ||
  fail "CreateFunction bg: $(cat "$EF_DATA/create-bg.json")"
[ "$(create_function broken provided.al2023 x "$EF_DATA/broken")" = 201 ] ||
  fail "CreateFunction broken: $(cat "$EF_DATA/create-broken.json")"

# logs NAME: the function's log (its last 300 lines) in $out.log.
logs() {
  [ "$(curl -sS -o "$out.log" -w '%{http_code}' "$EF_BASE/v1/functions/$1/logs?tail=300")" = 200 ] ||
    fail "GET the log of $1: $(cat "$out.log")"
}

note "output written while the container is idle opens the next invocation's entry"
expect_ok bg '{"action":"background"}'
sleep 2
expect_ok bg '{"n":2}'
rid=$(header X-Amzn-RequestId)
logs bg
/usr/bin/python3 - "$out.log" "$rid" <<'PY' || fail "the idle output is not in the entry of $rid: $(cat "$out.log")"
import sys
text = open(sys.argv[1]).read()
start = text.index("START RequestId: " + sys.argv[2])
entry = text[start:text.index("END RequestId: " + sys.argv[2])]
own = entry.index("handling call 2")
assert entry.count("bg-tick\n") >= 5, entry
assert entry.index("bg-tick") < own and entry.index("late from a thread") < own, entry
PY

note "a runtime that reports an init error and sleeps on: each invocation runs init again"
for _ in 1 2 3; do
  expect_error broken '{}' Custom.InitBroken 'no config'
  # The runner's runtime.exited follows its answer by a millisecond or so; an invocation sent
  # in between would still meet the container whose init failed.
  sleep 0.3
done
logs broken
[ "$(grep -c '^init run$' "$out.log")" = 3 ] || fail "init did not run once per invocation: $(cat "$out.log")"
# The runners log to funclet's log.
[ "$(grep -c "after its init error" "$EF_DATA/funclet.log")" = 3 ] ||
  fail "the runners did not log ending each runtime after its init error"

pod_stop
echo "PASS"
