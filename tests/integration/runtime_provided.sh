#!/usr/bin/env bash
# A provided.al2023 function whose bootstrap is the shell-and-curl custom runtime of AWS's
# "Tutorial: Building a custom runtime", unchanged (functions/provided_tutorial): it must
# initialise, answer several invocations from one warm container, and its stderr must reach
# the log tail.
source "$(dirname "$0")/lib.sh"
require_root
command -v curl >/dev/null || { echo "SKIP: curl is not installed (the tutorial's bootstrap needs it)" >&2; exit 77; }
pod_start
out=$EF_DATA/out

note "create the function"
status=$(create_function tutorial provided.al2023 function.handler \
  "$EF_SOURCE_DIR/tests/integration/functions/provided_tutorial")
[ "$status" = 201 ] || fail "CreateFunction gave $status: $(cat "$EF_DATA/create-tutorial.json")"

note "invoke it several times"
for i in 1 2 3; do
  code=$(curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST -H 'X-Amz-Log-Type: Tail' \
    "$EF_BASE/2015-03-31/functions/tutorial/invocations" -d "{\"n\":$i,\"text\":\"héllo\"}")
  [ "$code" = 200 ] || fail "invocation $i gave HTTP $code: $(cat "$out")"
  ! grep -qi '^x-amz-function-error:' "$out.h" || fail "invocation $i failed: $(cat "$out")"
  # The tutorial's handler answers with text, not JSON; Lambda passes it through as is.
  [ "$(cat "$out")" = "Echoing request: '{\"n\":$i,\"text\":\"héllo\"}'" ] \
    || fail "invocation $i answered: $(cat "$out")"
  log=$(grep -i '^x-amz-log-result:' "$out.h" | cut -d' ' -f2 | tr -d '\r' | base64 -d)
  grep -qF "{\"n\":$i,\"text\":\"héllo\"}" <<<"$log" || fail "the handler's stderr is not in the log tail: $log"
done
curl -fsS "$EF_BASE/v1/runtimes" >"$out"
[ "$(json_get "$out" 'len(j["containers"]) if isinstance(j, dict) else len(j)')" = 1 ] \
  || fail "expected one warm container after three calls: $(cat "$out")"

note "stop and check nothing is left"
runner_pids=$("$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list \
  | /usr/bin/python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["containers"]))')
pod_stop
assert_pod_gone $runner_pids
echo "PASS"
