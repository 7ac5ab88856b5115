#!/bin/bash
# The Python runtime's own HTTP client (runtimes/python/bootstrap) against a scripted Runtime API
# (runtime_python_fake_api.py): results, errors and context as Lambda's runtime gives them; one
# keep-alive connection per worker process; a server that closes after every response, one that
# drops the connection after each 202, one that writes byte by byte, one that holds back the end
# of each response; events and results of megabytes; init errors; and no heavy module
# (http.client, json, re) imported on the fast path.
# Needs no root: the bootstrap runs as an ordinary process.
set -euo pipefail

: "${EF_SOURCE_DIR:?EF_SOURCE_DIR must point at the source directory}"
PY=/usr/bin/python3
BOOTSTRAP="$EF_SOURCE_DIR/runtimes/python/bootstrap"
FAKE="$EF_SOURCE_DIR/tests/integration/runtime_python_fake_api.py"
TMP=$(mktemp -d /tmp/ef-pyclient.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.err; do
    [ -s "$f" ] && { echo "=== $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

note() {
  echo "--- $*" >&2
}

mkdir -p "$TMP/task"
# A module that imports logging, as AWS documents it; and one that configures the root logger
# itself, which the runtime must leave alone.
cat >"$TMP/task/logapp.py" <<'PYEOF'
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    logger.info("info line %s\nsecond line", event["n"])
    logger.debug("debug line %s", event["n"])
    logging.getLogger("child").warning("warning line %s", event["n"])
    return {"handlers": len(logger.handlers)}
PYEOF
cat >"$TMP/task/logconf.py" <<'PYEOF'
import logging

logging.basicConfig(format="OWN %(levelname)s %(message)s", level=logging.INFO)


def handler(event, context):
    logging.info("configured %s", event["n"])
    return {"handlers": len(logging.getLogger().handlers)}
PYEOF
cat >"$TMP/task/app.py" <<'PYEOF'
import hashlib
import os
import sys
import threading
import time


def handler(event, context):
    a = event.get("action")
    if a == "echo":
        cc = context.client_context
        return {"text": event.get("text"), "request_id": context.aws_request_id,
                "arn": context.invoked_function_arn,
                "remaining": context.get_remaining_time_in_millis(),
                "custom": cc.custom if cc else None,
                "installation_id": cc.client.installation_id if cc and cc.client else None,
                "identity": context.identity.cognito_identity_id,
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "heavy_modules": [m for m in ("http.client", "email", "json", "re", "logging")
                                  if m in sys.modules]}
    if a == "raise":
        raise ValueError("bad: %s" % event.get("x"))
    if a == "raise_ctl":
        raise type("Bad\x01Type\x7f" + "x" * 200, (Exception,), {})("ctl")
    if a == "log_late":
        # logging imported only now: the runtime sets it up from the next invocation on.
        import logging
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("late").info("late info %d", event["n"])
        return {}
    if a == "set":
        return {1, 2}
    if a == "decimal":
        import decimal
        return {"d": decimal.Decimal("1.5"), "i": decimal.Decimal("2")}
    if a == "big":
        blob = event["blob"].encode()
        return {"in": len(blob), "sha": hashlib.sha256(blob).hexdigest(), "out": "y" * event["n"]}
    if a == "sleep":
        time.sleep(event["s"])
        return {"pid": os.getpid(), "thread": threading.current_thread().name}
    return {"unknown": a}
PYEOF

# run_case NAME MODE EVENTS_JSON [ENV...]: runs the fake API and the bootstrap until every event
# is answered; the report is in $TMP/NAME.report.
run_case() {
  local name=$1 mode=$2 events=$3
  shift 3
  printf '%s' "$events" >"$TMP/$name.events"
  $PY "$FAKE" "$TMP/$name.events" "$TMP/$name.report" "$TMP/$name.port" "$mode" \
    2>"$TMP/$name.fake.err" &
  local fake=$!
  for _ in $(seq 100); do
    [ -s "$TMP/$name.port" ] && break
    sleep 0.05
  done
  [ -s "$TMP/$name.port" ] || fail "$name: the fake Runtime API did not start"
  set +e
  env AWS_LAMBDA_RUNTIME_API="127.0.0.1:$(cat "$TMP/$name.port")" _HANDLER=app.handler \
    LAMBDA_TASK_ROOT="$TMP/task" AWS_LAMBDA_FUNCTION_NAME=fake "$@" \
    timeout 60 "$BOOTSTRAP" >"$TMP/$name.out" 2>"$TMP/$name.err"
  RUNTIME_STATUS=$?
  wait "$fake"
  local fake_status=$?
  set -e
  [ "$RUNTIME_STATUS" != 124 ] || fail "$name: the runtime hung"
  [ "$fake_status" = 0 ] && [ -s "$TMP/$name.report" ] || fail "$name: not every event was answered"
}

# check NAME EXPR WHAT: EXPR is Python over `r` (the report) and `post(i)` (the i-th event's
# post, with `.json` its parsed body).
check() {
  $PY - "$TMP/$1.report" "$2" <<'PYEOF' || fail "$1: $3 ($2)"
import json, sys
r = json.load(open(sys.argv[1]))
class Post(dict):
    @property
    def json(self):
        return json.loads(self["body"])
def post(i):
    for p in r["posts"]:
        if "/invocation/req-%d/" % i in p["path"]:
            return Post(p)
    raise SystemExit("no post for event %d: %s" % (i, [p["path"] for p in r["posts"]]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PYEOF
}

# events PYTHON_LIST: the events file's JSON from a Python list of (event, headers) pairs; an
# event that is a str is sent as it is (not as JSON).
events() {
  $PY -c '
import json, sys
print(json.dumps([{"body": e if isinstance(e, str) else json.dumps(e), "headers": h}
                  for e, h in eval(sys.argv[1])]))' "$1"
}

keep_events=$(events '[
  ({"action": "echo", "text": "h\u00e9llo"},
   {"Lambda-Runtime-Client-Context": json.dumps(
        {"client": {"installation_id": "inst-1"}, "custom": {"who": "w\u00f6rld \u2713"}},
        ensure_ascii=False),
    "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-7"}),
    "Lambda-Runtime-Trace-Id": "Root=1-abc"}),
  ({"action": "raise", "x": 7}, {}),
  ({"action": "set"}, {}),
  ({"action": "decimal"}, {}),
  ("{not json", {}),
  ({"action": "big", "n": 3000000, "blob": "\u00e9" * 1500000}, {})]')

note "keep-alive: results, errors and context, on one connection"
run_case keep keep "$keep_events"
check keep 'r["connections"] == 1' "one connection for every request"
check keep 'post(0)["path"].endswith("/response")' "echo answered with /response"
check keep 'post(0).json["text"] == "h\u00e9llo" and post(0).json["request_id"] == "req-0"' "event and request id"
check keep 'post(0).json["arn"].endswith(":function:fake") and 0 < post(0).json["remaining"] <= 60000' "ARN and remaining time"
check keep 'post(0).json["custom"] == {"who": "w\u00f6rld \u2713"} and post(0).json["installation_id"] == "inst-1"' "client context"
check keep 'post(0).json["identity"] == "id-7" and post(0).json["trace"] == "Root=1-abc"' "cognito identity and trace id"
check keep 'post(0).json["heavy_modules"] == []' "no heavy module imported on the fast path"
check keep 'post(1)["path"].endswith("/error") and post(1)["headers"]["lambda-runtime-function-error-type"] == "ValueError"' "an exception is posted to /error with its type"
check keep 'post(1).json["errorMessage"] == "bad: 7" and any("app.py" in l for l in post(1).json["stackTrace"])' "error document"
check keep 'not any("bootstrap" in l for l in post(1).json["stackTrace"])' "no runtime frames in the trace"
check keep 'post(2).json["errorType"] == "Runtime.MarshalError" and post(2).json["errorMessage"].startswith("Unable to marshal response: Object of type set")' "marshal error"
check keep 'post(3).json == {"d": 1.5, "i": 2}' "Decimal values"
check keep 'post(4).json["errorType"] == "Runtime.UnmarshalError" and post(4).json["errorMessage"] == "Unable to unmarshal input: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"' "json's own message for a bad event"
check keep 'post(5).json["in"] == 3000000 and len(post(5).json["out"]) == 3000000' "a 3 MB event and a 3 MB result"
grep -q "\[ERROR\] ValueError: bad: 7" "$TMP/keep.out" || fail "the error is not in the function's output"

note "an exception type with control characters: a safe header, the type kept in the document"
run_case ctl keep "$(events '[({"action": "raise_ctl"}, {}), ({"action": "echo"}, {})]')"
check ctl 'post(0)["headers"]["lambda-runtime-function-error-type"] == "Bad?Type?" + "x" * 119' "header made printable and cut to 128 characters"
check ctl 'post(0).json["errorType"] == "Bad\x01Type\x7f" + "x" * 200 and post(0).json["errorMessage"] == "ctl"' "error document"
check ctl 'post(1).json["request_id"] == "req-1"' "the next invocation served"

note "a refused post of an outcome is replaced by the runtime's own error"
run_case refused refuse_first "$(events '[({"action": "echo"}, {}), ({"action": "echo"}, {})]')"
check refused 'r["refused"] and post(0)["path"].endswith("/req-0/error")' "the refused invocation answered with an error"
check refused 'post(0)["headers"]["lambda-runtime-function-error-type"] == "Runtime.ResponseRefused"' "its type"
check refused 'post(0).json["errorMessage"] == "The Runtime API refused the function\x27s response with HTTP 400"' "its message"
check refused 'post(1).json["request_id"] == "req-1"' "the next invocation served"

note "logging: Lambda's handler on the root logger, with the request id; never imported by the runtime"
run_case logging keep "$(events '[({"n": 0}, {}), ({"n": 1}, {})]')" _HANDLER=logapp.handler
check logging 'post(0).json["handlers"] == 1 and post(1).json["handlers"] == 1' "one handler on the root logger"
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
tab=$'\t'
for n in 0 1; do
  grep -Eq "^\[INFO\]$tab$iso${tab}req-$n${tab}info line $n\$" "$TMP/logging.out" \
    || fail "logger.info after setLevel(INFO) is not in Lambda's format: $(cat "$TMP/logging.out")"
  grep -Eq "^\[WARNING\]$tab$iso${tab}req-$n${tab}warning line $n\$" "$TMP/logging.out" \
    || fail "a child logger's warning is not in Lambda's format: $(cat "$TMP/logging.out")"
done
grep -q '^second line$' "$TMP/logging.out" || fail "a message's second line is lost: $(cat "$TMP/logging.out")"
! grep -q 'debug line' "$TMP/logging.out" || fail "logger.debug came out at level INFO"
now=$(date -u +%Y-%m-%dT%H)
grep -Eq "^\[INFO\]$tab$now" "$TMP/logging.out" || fail "the time is not UTC ($now): $(cat "$TMP/logging.out")"
run_case logconf keep "$(events '[({"n": 0}, {})]')" _HANDLER=logconf.handler
check logconf 'post(0).json["handlers"] == 1' "the user's root logger keeps its one handler"
grep -q '^OWN INFO configured 0$' "$TMP/logconf.err" || fail "the user's format is not used: $(cat "$TMP/logconf.err" "$TMP/logconf.out")"
! grep -q 'configured' "$TMP/logconf.out" || fail "a configured root logger also got the runtime's handler"
run_case loglate keep "$(events '[({"action": "echo"}, {}), ({"action": "log_late", "n": 1}, {}), ({"action": "log_late", "n": 2}, {})]')" \
  AWS_LAMBDA_MAX_CONCURRENCY=1
check loglate '"logging" not in post(0).json["heavy_modules"]' "logging not imported for a handler that does not use it"
grep -Eq "^\[INFO\]$tab$iso${tab}req-2${tab}late info 2\$" "$TMP/loglate.out" \
  || fail "logging imported during an invocation is not set up for the next one: $(cat "$TMP/loglate.out")"
run_case logworkers keep "$(events '[({"n": i}, {}) for i in range(6)]')" _HANDLER=logapp.handler \
  AWS_LAMBDA_MAX_CONCURRENCY=3
for n in 0 1 2 3 4 5; do
  grep -Eq "^\[INFO\]$tab$iso${tab}req-$n${tab}info line $n\$" "$TMP/logworkers.out" \
    || fail "worker processes: the line of req-$n lacks its request id: $(cat "$TMP/logworkers.out")"
done

note "a bad event as the very first one (before anything has loaded the json package)"
run_case badfirst keep "$(events '[("{\"a\" 1}", {})]')"
check badfirst 'post(0).json["errorType"] == "Runtime.UnmarshalError" and post(0).json["errorMessage"] == "Unable to unmarshal input: Expecting \x27:\x27 delimiter: line 1 column 6 (char 5)"' "json's own message for a bad first event"

for mode in close_each drop_post bytewise trickle; do
  note "$mode: every invocation is still answered"
  run_case "$mode" "$mode" "$(events '[({"action": "echo", "text": "a"}, {}),
    ({"action": "echo", "text": "b"}, {}), ({"action": "big", "n": 200000, "blob": "x"}, {})]')"
  check "$mode" 'post(0).json["text"] == "a" and post(1).json["text"] == "b"' "small results"
  check "$mode" 'len(post(2).json["out"]) == 200000' "a 200 KB result"
done
check close_each 'r["connections"] >= 3' "a new connection after each close"

note "AWS_LAMBDA_MAX_CONCURRENCY=3: three worker processes, each on its own connection"
t0=$(date +%s%3N)
run_case concurrent keep "$(events '[({"action": "sleep", "s": 1}, {})] * 3')" \
  AWS_LAMBDA_MAX_CONCURRENCY=3
elapsed=$(($(date +%s%3N) - t0))
check concurrent 'r["connections"] == 3' "three connections"
check concurrent 'len({post(i).json["pid"] for i in range(3)}) == 3' "three different processes served them"
check concurrent 'all(post(i).json["thread"] == "MainThread" for i in range(3))' "each on its main thread"
[ "$elapsed" -lt 2800 ] || fail "three 1 s invocations took $elapsed ms with 3 pollers"

note "a handler that cannot be imported is an init error, and the runtime exits"
run_case init keep "$(events '[({}, {})]')" _HANDLER=missing.handler
check init 'r["posts"][0]["path"].endswith("/init/error") and r["posts"][0]["headers"]["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"' "init error posted"
check init 'json.loads(r["posts"][0]["body"])["errorMessage"] == "Unable to import module '"'"'missing'"'"': No module named '"'"'missing'"'"'"' "init error message"
[ "$RUNTIME_STATUS" = 1 ] || fail "the runtime exited with $RUNTIME_STATUS after an init error, not 1"

note "AWS_LAMBDA_MAX_CONCURRENCY=4 and an init error: reported once, before any worker exists"
t0=$(date +%s%3N)
run_case initconc keep "$(events '[({}, {})]')" _HANDLER=missing.handler AWS_LAMBDA_MAX_CONCURRENCY=4
elapsed=$(($(date +%s%3N) - t0))
check initconc 'len(r["posts"]) == 1 and r["posts"][0]["path"].endswith("/init/error")' "one init error"
check initconc 'r["polls"] == 0 and r["connections"] == 1' "no worker polled"
[ "$RUNTIME_STATUS" = 1 ] || fail "the runtime exited with $RUNTIME_STATUS after an init error, not 1"
[ "$elapsed" -lt 5000 ] || fail "the init error took $elapsed ms to end the runtime"

echo "PASS: runtime_python_client"
