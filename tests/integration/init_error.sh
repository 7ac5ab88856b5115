#!/usr/bin/env bash
# A function whose init fails, invoked in bursts through a real pod: every invocation gets the
# init error of an init attempt of its own, as in Lambda, where the next invocation after a
# failed init runs init again. The runner answers the invocations of a runtime that reported
# /init/error with that error and ends the runtime (100 ms grace, then kill); until the
# controller hears of the end, a container it handed out again would answer a new invocation
# with the old error at once, without a new init. Each init here prints a marker of its own
# (a random id) before it fails, and that output is the start of its first invocation's log, so:
#  - every answer is the init error, with exactly one marker in its Tail log (X-Amz-Log-Result);
#  - no marker appears twice: no answer is another invocation's init error;
#  - the controller says why it stopped using each container, and none is kept.
# Two functions: a Python module that raises at import (the runtime exits at once), and a custom
# runtime that posts /init/error and then sleeps, so that the runner's 100 ms grace is the window.
# Reserved concurrency 2 makes the other invocations wait in the function's queue, so that each
# freed slot is given to a waiting invocation at once, while the failed container is still warm.
source "$(dirname "$0")/lib.sh"
require_root
command -v curl >/dev/null || { echo "SKIP: curl is not installed" >&2; exit 77; }
require_built easyfaas-controller easyfaas-funclet easyfaas-runner
pod_start
out=$EF_DATA/burst
mkdir -p "$out"

# invoke_one NAME N: one invocation with Tail logs into $out/NAME.N{,.h}.
invoke_one() {
  curl -sS -D "$out/$1.$2.h" -o "$out/$1.$2" -X POST -H 'X-Amz-Log-Type: Tail' \
    "$EF_BASE/2015-03-31/functions/$1/invocations" -d '{}'
}
export -f invoke_one
export EF_BASE out

# burst NAME COUNT: COUNT invocations, 8 at a time.
burst() {
  seq "$2" | xargs -P8 -I{} bash -c 'invoke_one "$0" {}' "$1"
}

# check_burst NAME COUNT ERROR_TYPE: every answer is the init error with a marker of its own.
check_burst() {
  local name=$1 count=$2 type=$3 i log markers
  : >"$out/$name.markers"
  for i in $(seq "$count"); do
    grep -q '^HTTP/1.1 200' "$out/$name.$i.h" || fail "$name #$i: $(head -1 "$out/$name.$i.h") $(cat "$out/$name.$i")"
    grep -qi '^x-amz-function-error: Unhandled' "$out/$name.$i.h" || fail "$name #$i: no function error: $(cat "$out/$name.$i")"
    [ "$(json_get "$out/$name.$i" 'j["errorType"]')" = "$type" ] || fail "$name #$i: $(cat "$out/$name.$i")"
    log=$(grep -i '^x-amz-log-result:' "$out/$name.$i.h" | cut -d' ' -f2 | tr -d '\r' | base64 -d)
    markers=$(grep -o 'init-attempt [0-9a-f]*' <<<"$log" || true)
    [ "$(grep -c . <<<"$markers")" = 1 ] ||
      fail "$name #$i: the answer did not come from an init of its own (markers: '$markers'); log: $log"
    echo "$markers" >>"$out/$name.markers"
  done
  local unique
  unique=$(sort -u "$out/$name.markers" | wc -l)
  [ "$unique" = "$count" ] || fail "$name: $count answers came from $unique inits"
}

# containers_left: how many containers the controller holds.
containers_left() {
  curl -fsS "$EF_BASE/v1/runtimes" >"$out/rt.json"
  json_get "$out/rt.json" 'len(j["containers"]) if isinstance(j, dict) else len(j)'
}

limit() {
  local code
  code=$(curl -sS -o "$out/limit.json" -w '%{http_code}' -X PUT \
    "$EF_BASE/2017-10-31/functions/$1/concurrency" -d '{"ReservedConcurrentExecutions": 2}')
  [ "$code" = 200 ] || fail "concurrency of $1: $code $(cat "$out/limit.json")"
}

note "a Python module that raises at import"
mkdir -p "$EF_DATA/pyfail"
cat >"$EF_DATA/pyfail/app.py" <<'PYEOF'
import sys
import uuid

print("init-attempt " + uuid.uuid4().hex, file=sys.stderr, flush=True)
raise RuntimeError("this module fails at import")


def handler(event, context):
    return "never"
PYEOF
[ "$(create_function pyfail python3.12 app.handler "$EF_DATA/pyfail")" = 201 ] ||
  fail "create pyfail: $(cat "$EF_DATA/create-pyfail.json")"
limit pyfail
burst pyfail 24
pytype=$(json_get "$out/pyfail.1" 'j["errorType"]')
check_burst pyfail 24 "$pytype"

note "a custom runtime that posts /init/error and sleeps on"
mkdir -p "$EF_DATA/shfail"
cat >"$EF_DATA/shfail/bootstrap" <<'SHEOF'
#!/bin/sh
echo "init-attempt $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >&2
curl -sS -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.Custom' \
  -d '{"errorMessage":"no configuration","errorType":"Runtime.Custom"}' \
  "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/init/error"
# A runtime that does not exit after its init error: the runner ends it after 100 ms.
exec sleep 30
SHEOF
chmod 0755 "$EF_DATA/shfail/bootstrap"
[ "$(create_function shfail provided.al2023 function.handler "$EF_DATA/shfail")" = 201 ] ||
  fail "create shfail: $(cat "$EF_DATA/create-shfail.json")"
limit shfail
burst shfail 16
check_burst shfail 16 Runtime.Custom

note "the containers were taken out of service, and none is kept"
grep -q "its runtime's init failed" "$EF_DATA/controller.log" ||
  fail "the controller did not log the failed inits"
for _ in $(seq 50); do
  [ "$(containers_left)" = 0 ] && break
  sleep 0.1
done
[ "$(containers_left)" = 0 ] || fail "containers kept after failed inits: $(cat "$out/rt.json")"

pod_stop
note "init_error passed"
