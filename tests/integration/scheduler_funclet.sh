#!/usr/bin/env bash
# funclet and the controller going away, through a real pod: without funclet an invocation that
# needs a container is 503 with a message that says so, and the controller reconnects and serves
# again when funclet is back; after funclet was killed (its containers outlive it until its
# restart removes them) the controller re-syncs its pool from container.list; a controller that
# was killed keeps what it acknowledged (a version, new code, concurrency settings) and gives
# back, when it starts again, the containers it no longer knows.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
pod_start
out=$EF_DATA/out

[ "$(create_function f python3.11 app.handler "$SLEEPER" ',"Timeout":30')" = 201 ] ||
  fail "create: $(cat "$EF_DATA/create-f.json")"
[ "$(invoke f '{}')" = 200 ] || fail "first call: $(cat "$out")"
id1=$(pool_ids f)

note "funclet stops: invocations get 503 with a clear message"
kill -TERM "$FUNCLET_PID"
wait "$FUNCLET_PID" || fail "funclet exited with $? on SIGTERM"
FUNCLET_PID=
wait_for 10 "the controller to notice" eval '! funclet_connected'
wait_for 10 "the destroyed container to leave the pool" pool_is f any 0
curl -sS -D "$EF_DATA/h" -o "$EF_DATA/503.json" -X POST "$EF_BASE/2015-03-31/functions/f/invocations" -d '{}'
head -1 "$EF_DATA/h" | grep -q ' 503' || fail "without funclet: $(head -1 "$EF_DATA/h") $(cat "$EF_DATA/503.json")"
grep -qi '^x-amzn-errortype: ServiceException' "$EF_DATA/h" || fail "503 without ServiceException"
grep -qF "funclet is not reachable at $EF_DATA/run/funclet.sock; retrying" "$EF_DATA/503.json" ||
  fail "503 message: $(cat "$EF_DATA/503.json")"
metrics=$(curl -fsS "$EF_BASE/metrics")
grep -q '^easyfaas_funclet_up 0$' <<<"$metrics" || fail "funclet_up is not 0"
grep -q '^easyfaas_funclet_disconnects_total 1$' <<<"$metrics" || fail "the disconnect is not counted"

note "funclet comes back: the controller reconnects within seconds and serves"
funclet_start
wait_for 10 "the controller to reconnect" funclet_connected
[ "$(invoke f '{}')" = 200 ] || fail "call after funclet's return: $(cat "$out")"
[ "$(json_get "$out" 'j["host"]')" != "$id1" ] || fail "a container of the old funclet served"

note "funclet is killed: after its restart the pool holds only what funclet has"
id2=$(pool_ids f)
kill -KILL "$FUNCLET_PID"
wait "$FUNCLET_PID" 2>/dev/null || true
FUNCLET_PID=
wait_for 10 "the controller to notice" eval '! funclet_connected'
funclet_start
wait_for 10 "the controller to reconnect" funclet_connected
wait_for 10 "container $id2 of the killed funclet to leave the pool" eval '[[ " $(pool_ids f) " != *" '"$id2"' "* ]]'
for id in $(pool_ids f); do
  funclet_has "$id" || fail "the pool holds $id, which funclet does not have"
done
[ "$(invoke f '{}')" = 200 ] || fail "call after funclet's restart: $(cat "$out")"

note "the controller is killed: what it acknowledged stays, and it gives back the containers it left"
# api METHOD PATH [BODY]: prints the HTTP status; the body is in $out.
api() {
  curl -sS -o "$out" -w '%{http_code}' -X "$1" "$EF_BASE$2" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"}
}
# Acknowledged changes, each the last word before the kill: a version, new code, a reserved
# concurrency, and one put and deleted again.
[ "$(api POST /2015-03-31/functions/f/versions '{}')" = 201 ] || fail "PublishVersion: $(cat "$out")"
v1_sha=$(json_get "$out" 'j["CodeSha256"]')
mkdir -p "$EF_DATA/f2"
cp "$SLEEPER"/* "$EF_DATA/f2/"
echo '# the second code' >"$EF_DATA/f2/second.py"
/usr/bin/python3 "$EF_SOURCE_DIR/deploy/lib/zip-dir.py" "$EF_DATA/f2" "$EF_DATA/f2.zip"
printf '{"ZipFile":"%s"}' "$(base64 -w0 "$EF_DATA/f2.zip")" >"$EF_DATA/f2.json"
[ "$(api PUT /2015-03-31/functions/f/code "@$EF_DATA/f2.json")" = 200 ] ||
  fail "UpdateFunctionCode: $(cat "$out")"
latest_sha=$(json_get "$out" 'j["CodeSha256"]')
[ "$latest_sha" != "$v1_sha" ] || fail "the new code has the old CodeSha256"
[ "$(api PUT /2017-10-31/functions/f/concurrency '{"ReservedConcurrentExecutions": 5}')" = 200 ] ||
  fail "PutFunctionConcurrency: $(cat "$out")"
[ "$(create_function g python3.11 app.handler "$SLEEPER")" = 201 ] || fail "create g"
[ "$(api PUT /2017-10-31/functions/g/concurrency '{"ReservedConcurrentExecutions": 3}')" = 200 ] ||
  fail "PutFunctionConcurrency g: $(cat "$out")"
[ "$(api DELETE /2017-10-31/functions/g/concurrency)" = 204 ] ||
  fail "DeleteFunctionConcurrency: $(cat "$out")"
# The update retired the container of the old code: a warm one of the new code.
[ "$(invoke f '{}')" = 200 ] || fail "call with the new code: $(cat "$out")"
id3=$(pool_ids f)
[ -n "$id3" ] || fail "no warm container"
kill -KILL "$CONTROLLER_PID"
wait "$CONTROLLER_PID" 2>/dev/null || true
funclet_has "$id3" || fail "funclet lost container $id3 with the controller"
controller_start
[ "$(api GET /2015-03-31/functions/f/configuration)" = 200 ] &&
  [ "$(json_get "$out" 'j["CodeSha256"]')" = "$latest_sha" ] ||
  fail "the new code of f after kill -9: $(cat "$out")"
[ "$(api GET '/2015-03-31/functions/f/configuration?Qualifier=1')" = 200 ] &&
  [ "$(json_get "$out" 'j["CodeSha256"], j["Version"]')" = "('$v1_sha', '1')" ] ||
  fail "version 1 of f after kill -9: $(cat "$out")"
[ "$(api GET /2019-09-30/functions/f/concurrency)" = 200 ] &&
  [ "$(json_get "$out" 'j.get("ReservedConcurrentExecutions")')" = 5 ] ||
  fail "the reserved concurrency of f after kill -9: $(cat "$out")"
[ "$(api GET /2019-09-30/functions/g/concurrency)" = 200 ] &&
  [ "$(json_get "$out" 'j.get("ReservedConcurrentExecutions")')" = None ] ||
  fail "the deleted reserved concurrency of g after kill -9: $(cat "$out")"
wait_for 10 "funclet to destroy the unknown container $id3" eval '! funclet_has '"$id3"
[ -z "$(funclet_list | awk '$3 == "held"')" ] || fail "containers nobody holds: $(funclet_list)"
[ "$(invoke f '{}')" = 200 ] || fail "call after the controller's restart: $(cat "$out")"
[ "$(curl -sS -o "$out" -w '%{http_code}' -X POST "$EF_BASE/2015-03-31/functions/f/invocations?Qualifier=1" -d '{}')" = 200 ] ||
  fail "version 1 after the controller's restart: $(cat "$out")"

note "stop and check nothing is left"
runner_pids=$(funclet_list | awk '{ print $4 }')
pod_stop
# shellcheck disable=SC2086 # one pid per word
assert_pod_gone $runner_pids
echo "PASS"
