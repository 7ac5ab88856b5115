# Helpers of the runtime_*.sh tests, on top of lib.sh (source that first): invoking with curl,
# checking Lambda's answers, and looking at a function's containers from the host.

# invoke NAME [BODY_OR_@FILE] [CURL_ARGS...]: the response body in $out, headers in $out.h;
# prints the HTTP status.
invoke() {
  local name=$1 body=${2:-'{}'}
  shift 2 || shift $#
  curl -sS -D "$out.h" -o "$out" -w '%{http_code}' -X POST "$@" \
    "$EF_BASE/2015-03-31/functions/$name/invocations" --data-binary "$body"
}

# header NAME: a header of the last response.
header() {
  grep -i "^$1:" "$out.h" | cut -d' ' -f2- | tr -d '\r' || true
}

# expect_ok NAME [BODY] [CURL_ARGS...]: 200 without a function error.
expect_ok() {
  local code
  code=$(invoke "$@")
  [ "$code" = 200 ] || fail "$1 gave HTTP $code: $(head -c 600 "$out")"
  [ -z "$(header X-Amz-Function-Error)" ] || fail "$1 failed: $(head -c 600 "$out")"
}

# expect_error NAME BODY TYPE MESSAGE_REGEX: 200 with X-Amz-Function-Error: Unhandled and
# Lambda's error document (TYPE "-" means no errorType, as for timeouts).
expect_error() {
  local code type message
  code=$(invoke "$1" "$2")
  [ "$code" = 200 ] || fail "$1: a function error gave HTTP $code: $(head -c 600 "$out")"
  [ "$(header X-Amz-Function-Error)" = Unhandled ] || fail "$1 $2: no X-Amz-Function-Error: $(head -c 600 "$out")"
  type=$(json_get "$out" 'j.get("errorType", "-")')
  [ "$type" = "$3" ] || fail "$1 $2: errorType is $type, not $3: $(head -c 600 "$out")"
  message=$(json_get "$out" 'j["errorMessage"]')
  grep -Eq -- "$4" <<<"$message" || fail "$1 $2: errorMessage does not match '$4': $(head -c 600 "$out")"
}

# jq_out EXPR: a Python expression on the last response body, parsed as JSON (`j`).
jq_out() {
  json_get "$out" "$1"
}

# fn_containers NAME: the ids of the function's containers in the controller's pool.
fn_containers() {
  curl -fsS "$EF_BASE/v1/runtimes" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
cs = j["containers"] if isinstance(j, dict) else j
print(" ".join(c["id"] for c in cs if c.get("function") == sys.argv[1]))' "$1"
}

# funclet_containers: "id pid" lines of every container funclet knows.
funclet_containers() {
  "$EF_BUILD_DIR/ef-rpc-call" "$EF_DATA/run/funclet.sock" container.list | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["containers"]:
    print(c["id"], c["pid"])'
}

# runner_pid ID: the host pid of a container's runner (PID 1 inside), or nothing.
runner_pid() {
  funclet_containers | awk -v id="$1" '$1 == id { print $2 }'
}

# descendants PID: every process below PID (host pids), one per line.
descendants() {
  local p c
  for p in /proc/"$1"/task/*/children; do
    [ -r "$p" ] || continue
    for c in $(cat "$p" 2>/dev/null); do
      echo "$c"
      descendants "$c"
    done
  done
}

# proc_state PID: the one-letter state of a process (Z for a zombie), or nothing when gone.
proc_state() {
  sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true
}

# cgroup_dirs ID: the container's cgroup directories that still exist.
cgroup_dirs() {
  find /sys/fs/cgroup -depth -type d -name "$1" 2>/dev/null || true
}
