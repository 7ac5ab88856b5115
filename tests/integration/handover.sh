#!/usr/bin/env bash
# The runtime handover (docs/handover.md) through the whole pod: after its first invocation a
# container that serves one invocation at a time has its runtime's connection served by the
# controller ("handover": true in /v1/runtimes), and everything an invocation can end with still
# ends as it does through the runner: the result, the log of that invocation only (with the
# output written between invocations), Max Memory Used, a function error, a response too large,
# the runtime's exit with its status, a timeout; the runtime keeps serving after the errors it
# survives. Containers that do not qualify (several invocations at once, a runtime with a
# connection per request) keep the runner's path; --runtime-handover off keeps every container
# on it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/runtime_lib.sh"
require_root

# write_app DIR: the test function's code.
write_app() {
  mkdir -p "$1"
  cat >"$1/app.py" <<'PY'
import os
import time

# Tells one runtime from another (every runtime is pid 2 in its container).
TOKEN = os.urandom(8).hex()
print("module loaded")


def handler(event, context):
    a = event.get("action")
    print("call", event.get("n"))
    if a == "raise":
        raise ValueError("asked to fail")
    if a == "big":
        return "x" * (7 * 1024 * 1024)
    if a == "memory":
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return {"runtime": TOKEN, "mb": len(block) >> 20}
    if a == "exit":
        os._exit(7)
    if a == "sleep":
        time.sleep(10)
    return {"n": event.get("n"), "runtime": TOKEN}
PY
}

pod_start
out=$EF_DATA/out
src=$EF_DATA/src
write_app "$src"
status=$(create_function hand python3.12 app.handler "$src" ',"MemorySize":512,"Timeout":2')
[ "$status" = 201 ] || fail "CreateFunction gave $status: $(cat "$EF_DATA/create-hand.json")"

# handover_of NAME: "true"/"false" for each of the function's containers, space separated.
handover_of() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(c["handover"]).lower() for c in json.load(sys.stdin) if c["function"] == sys.argv[1]))' "$1"
}

# wait_handover NAME: until the function's one container is handed over (at most 5 s).
wait_handover() {
  for _ in $(seq 50); do
    [ "$(handover_of "$1")" = true ] && return 0
    sleep 0.1
  done
  fail "$1 was not handed over: $(handover_of "$1")"
}

# tail_log: the decoded X-Amz-Log-Result of the last response.
tail_log() {
  header X-Amz-Log-Result | base64 -d
}

note "the first invocation goes through the runner; then the controller has the connection"
expect_ok hand '{"n":1}'
rt1=$(jq_out 'j["runtime"]')
wait_handover hand

metrics=$(curl -fsS "$EF_BASE/metrics")
grep -q '^easyfaas_containers_handed_over 1$' <<<"$metrics" ||
  fail "the handover is not counted: $(grep handed_over <<<"$metrics")"

note "a handed-over runtime serves the next invocations, each with its own log"
expect_ok hand '{"n":2}' -H 'X-Amz-Log-Type: Tail'
[ "$(jq_out 'j["runtime"]')" = "$rt1" ] || fail "the second invocation ran in another runtime"
tail_log >"$out.tail"
grep -q '^call 2$' "$out.tail" || fail "the log lacks this invocation's output: $(cat "$out.tail")"
if grep -q '^call 1$' "$out.tail"; then fail "the log has the previous invocation's output"; fi
grep -q "^REPORT RequestId: $(header X-Amzn-RequestId)" "$out.tail" ||
  fail "no REPORT line for this invocation: $(cat "$out.tail")"
grep -Eq 'Max Memory Used: [1-9][0-9]* MB' "$out.tail" || fail "no Max Memory Used: $(cat "$out.tail")"
[ "$(handover_of hand)" = true ] || fail "the handover ended"

note "Max Memory Used is read through the status file the runner passed"
expect_ok hand '{"n":3,"action":"memory"}' -H 'X-Amz-Log-Type: Tail'
[ "$(jq_out 'j["runtime"]')" = "$rt1" ] || fail "the memory invocation ran in another runtime"
used=$(tail_log | sed -n 's/.*Max Memory Used: \([0-9]*\) MB.*/\1/p')
[ -n "$used" ] && [ "$used" -ge 200 ] || fail "Max Memory Used is '$used' after 200 MB: $(tail_log)"

note "a function error, and a response too large, leave the runtime serving"
expect_error hand '{"n":4,"action":"raise"}' ValueError 'asked to fail'
expect_error hand '{"n":5,"action":"big"}' Function.ResponseSizeTooLarge 'exceeded maximum allowed payload size'
expect_ok hand '{"n":6}'
[ "$(jq_out 'j["runtime"]')" = "$rt1" ] || fail "the runtime did not survive the errors"
[ "$(handover_of hand)" = true ] || fail "the handover ended after the errors"

note "the runtime's exit fails the invocation with its status; the next one gets a new runtime"
expect_error hand '{"n":7,"action":"exit"}' Runtime.ExitError 'Runtime exited with error: exit status 7'
expect_ok hand '{"n":8}'
rt2=$(jq_out 'j["runtime"]')
[ "$rt2" != "$rt1" ] || fail "the runtime that exited served again"
expect_ok hand '{"n":9}'
[ "$(jq_out 'j["runtime"]')" = "$rt2" ] || fail "the new runtime did not serve twice"
wait_handover hand

note "a timeout answers at the Timeout, and the container is replaced"
t0=$(date +%s%N)
expect_error hand '{"n":10,"action":"sleep"}' - 'Task timed out after 2.00 seconds'
elapsed=$((($(date +%s%N) - t0) / 1000000))
[ "$elapsed" -lt 4000 ] || fail "the timeout took ${elapsed} ms"
expect_ok hand '{"n":11}'
[ "$(jq_out 'j["runtime"]')" != "$rt2" ] || fail "the runtime that timed out served again"

note "a runtime killed while idle and handed over: the next invocation gets a new one"
expect_ok hand '{"n":12}'
victim=$(jq_out 'j["runtime"]')
wait_handover hand
container=$(fn_containers hand)
runner_pid=$(funclet_containers | awk -v id="$container" '$1 == id { print $2 }')
[ -n "$runner_pid" ] || fail "cannot find the runner of container $container"
host_pid=$(pgrep -P "$runner_pid" | head -n1)
[ -n "$host_pid" ] || fail "cannot find the runtime of container $container on the host"
kill -9 "$host_pid"
for _ in $(seq 50); do
  [ -z "$(fn_containers hand)" ] && break
  sleep 0.1
done
expect_ok hand '{"n":13}'
[ "$(jq_out 'j["runtime"]')" != "$victim" ] || fail "the killed runtime answered"

note "a custom runtime that polls after each post's answer is handed over too"
keep=$EF_DATA/keepalive
mkdir -p "$keep"
cat >"$keep/bootstrap" <<'PY'
#!/usr/bin/python3
# A custom runtime on one keep-alive connection (http.client), without pipelining: it asks for
# the next event only once its post is answered.
import http.client
import json
import os
import time

token = os.urandom(8).hex()
host = os.environ["AWS_LAMBDA_RUNTIME_API"]
api = "/2018-06-01/runtime/invocation/"
conn = http.client.HTTPConnection(host)
while True:
    conn.request("GET", api + "next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    if event.get("hangup"):
        # Closes the connection in the middle of the invocation and stays alive.
        conn.close()
        time.sleep(60)
    if event.get("big"):
        body = b'"' + b"x" * (7 << 20) + b'"'
    else:
        body = json.dumps({"runtime": token}).encode()
    try:
        conn.request("POST", api + rid + "/response", body=body)
        conn.getresponse().read()
    except (ConnectionError, http.client.HTTPException):
        # Refused with a close: a new connection, as the bundled runtimes do.
        conn.close()
        conn = http.client.HTTPConnection(host)
PY
chmod +x "$keep/bootstrap"
status=$(create_function keep provided.al2023 unused "$keep")
[ "$status" = 201 ] || fail "CreateFunction keep gave $status: $(cat "$EF_DATA/create-keep.json")"
expect_ok keep '{}'
rt1=$(jq_out 'j["runtime"]')
wait_handover keep
expect_ok keep '{}'
[ "$(jq_out 'j["runtime"]')" = "$rt1" ] || fail "the custom runtime was replaced"

note "a response too large closes the handed-over connection: the container is replaced"
expect_error keep '{"big":true}' Function.ResponseSizeTooLarge 'exceeded maximum allowed payload size'
expect_ok keep '{}'
[ "$(jq_out 'j["runtime"]')" != "$rt1" ] || fail "the runtime whose connection closed served again"

note "a runtime that closes its connection during an invocation is ended, and the call fails"
expect_ok keep '{}'
wait_handover keep
expect_error keep '{"hangup":true}' Runtime.ExitError 'Runtime exited with error: signal: killed'
expect_ok keep '{}'

note "several invocations per container, and a connection per request, keep the runner's path"
status=$(create_function multi python3.12 app.handler "$src" ',"PerExecutionEnvironmentMaxConcurrency":2')
[ "$status" = 201 ] || fail "CreateFunction multi gave $status: $(cat "$EF_DATA/create-multi.json")"
expect_ok multi '{"n":1}'
expect_ok multi '{"n":2}'
status=$(create_function tutorial provided.al2023 function.handler \
  "$EF_SOURCE_DIR/tests/integration/functions/provided_tutorial")
[ "$status" = 201 ] || fail "CreateFunction tutorial gave $status"
for i in 1 2 3; do expect_ok tutorial "{\"n\":$i}"; done
sleep 0.5
[ "$(handover_of multi)" = false ] || fail "a container with 2 invocations at once was handed over"
[ "$(handover_of tutorial)" = false ] || fail "a runtime with a connection per request was handed over"
expect_ok tutorial '{"n":4}'
grep -q "Echoing request" "$out" || fail "the tutorial runtime answered: $(cat "$out")"

note "the pod stops cleanly with handed-over containers"
pod_remove

note "--runtime-handover off keeps every invocation on the runner's path"
EF_CONTROLLER_ARGS="--runtime-handover off" pod_start
out=$EF_DATA/out
src=$EF_DATA/src
write_app "$src"
[ "$(create_function hand python3.12 app.handler "$src")" = 201 ] || fail "CreateFunction"
for i in 1 2 3; do expect_ok hand "{\"n\":$i}"; done
[ "$(handover_of hand)" = false ] || fail "handed over with --runtime-handover off"
curl -fsS "$EF_BASE/metrics" | grep -q '^easyfaas_containers_handed_over 0$' ||
  fail "a handover counted with --runtime-handover off"
code=0
"$EF_BUILD_DIR/easyfaas-controller" --data-dir "$EF_DATA" --runtime-handover maybe \
  2>"$out.err" || code=$?
[ "$code" = 2 ] && grep -q -- "--runtime-handover must be on or off" "$out.err" ||
  fail "a bad --runtime-handover gave $code: $(cat "$out.err")"

pod_stop
echo "PASS"
