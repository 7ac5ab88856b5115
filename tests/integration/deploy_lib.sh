# shellcheck shell=bash
# Shared helpers of the deployment tests (deploy_compose.sh, deploy_kube.sh): the container
# engine set up privately for the test, the three images built, and checks that a deployment
# left nothing behind. Source it after lib.sh.

# The images under test carry their own tag, so a developer's :latest images stay untouched;
# they are kept afterwards as the build cache of the next run (like the base image).
DEPLOY_TAG="test"

# deploy_require_tools: root, and podman (with runc and a pause binary for pods), docker-compose,
# debootstrap and python3-yaml; installs the missing ones from Debian when it can, otherwise
# skips the test.
deploy_require_tools() {
  require_root
  local -A pkg_of=([podman]=podman [runc]=runc [catatonit]=catatonit
    [docker-compose]=docker-compose [debootstrap]=debootstrap [iptables]=iptables)
  local missing=() tool
  for tool in "${!pkg_of[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${pkg_of[$tool]}")
  done
  /usr/bin/python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
  [ -d /usr/lib/cni ] || missing+=(containernetworking-plugins)
  if [ ${#missing[@]} -gt 0 ]; then
    note "installing ${missing[*]}"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null 2>&1; }; }; then
      echo "SKIP: $(basename "$0") needs ${missing[*]} (Debian packages), which could not be installed" >&2
      exit 77
    fi
  fi
}

# deploy_engine_setup: a private containers.conf for every podman command of the test (and the
# API service): runc, because crun refuses cgroup v1 hybrid hosts, and file and process limits
# that a nested host allows (podman's defaults raise them beyond what it may).
# Sets DEPLOY_TMP (removed by deploy_cleanup_tmp).
deploy_engine_setup() {
  DEPLOY_TMP=$(mktemp -d /tmp/ef-deploy.XXXXXX)
  cat >"$DEPLOY_TMP/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF=$DEPLOY_TMP/containers.conf
}

# deploy_build_images: deploy/docker/build.sh with the test's tag; reports how long it took.
deploy_build_images() {
  local start=$SECONDS
  note "building the images (tag $DEPLOY_TAG; the base image is made once and kept)"
  EF_ENGINE=podman "$EF_SOURCE_DIR/deploy/docker/build.sh" --tag "$DEPLOY_TAG" \
    >"$DEPLOY_TMP/build.log" 2>&1 || {
    tail -n 60 "$DEPLOY_TMP/build.log" >&2
    fail "deploy/docker/build.sh failed"
  }
  note "images built in $((SECONDS - start)) s"
}

# wait_healthy BASE [SECONDS]: until /healthz says funclet is connected.
wait_healthy() {
  local base=$1 limit=${2:-90} i
  for ((i = 0; i < limit * 5; i++)); do
    grep -q '"funclet":"connected"' <<<"$(curl -fsS "$base/healthz" 2>/dev/null)" && return 0
    sleep 0.2
  done
  return 1
}

# make_adder DIR: the README's `adder` function.
make_adder() {
  mkdir -p "$1"
  cat >"$1/app.py" <<'PY'
def handler(event, context):
    print("got", event)
    return {"sum": event["a"] + event["b"]}
PY
}

# invoke NAME JSON: prints the response body; the status must be 200.
invoke() {
  local out=$DEPLOY_TMP/invoke.out status
  status=$(curl -sS -o "$out" -w '%{http_code}' -X POST \
    "$EF_BASE/2015-03-31/functions/$1/invocations" -d "$2") || fail "invoking $1: curl failed"
  [ "$status" = 200 ] || fail "invoking $1 gave HTTP $status: $(cat "$out")"
  cat "$out"
}

# exercise_pod: creates the README's `adder`, the sample `hello` and a Node.js function, invokes
# them, reads the log tail, and checks the user container's cgroup on the host below FUNCLET_CGROUP (the
# funclet container's memory cgroup directory).
exercise_pod() {
  make_adder "$DEPLOY_TMP/adder"
  local status out
  status=$(create_function adder python3.11 app.handler "$DEPLOY_TMP/adder" ',"MemorySize":128,"Timeout":10')
  [ "$status" = 201 ] || fail "CreateFunction adder gave $status: $(cat "$EF_DATA/create-adder.json")"
  out=$(invoke adder '{"a": 1, "b": 2}')
  [ "$out" = '{"sum": 3}' ] || fail "adder answered: $out"
  status=$(create_function hello python3.11 lambda_function.handler "$EF_SOURCE_DIR/deploy/examples/hello")
  [ "$status" = 201 ] || fail "CreateFunction hello gave $status: $(cat "$EF_DATA/create-hello.json")"
  out=$(invoke hello '{"name": "EasyFaaS"}')
  grep -q '"Hello, EasyFaaS!"' <<<"$out" || fail "hello answered: $out"
  grep -q '"uid": 1001' <<<"$out" || fail "hello did not run as the sandbox user: $out"

  # Node.js from the funclet image's /usr, on the runtime from the runtimes volume (skipped only
  # where the controller does not know the runtime yet).
  mkdir -p "$DEPLOY_TMP/multiply"
  cat >"$DEPLOY_TMP/multiply/index.js" <<'JS'
exports.handler = async (event) => ({ product: event.a * event.b, node: process.version });
JS
  status=$(create_function multiply nodejs20.x index.handler "$DEPLOY_TMP/multiply")
  if [ "$status" = 201 ]; then
    out=$(invoke multiply '{"a": 6, "b": 7}')
    grep -q '"product":42' <<<"$out" || fail "multiply answered: $out"
  elif [ "$status" = 400 ] && grep -q "Member must satisfy enum" "$EF_DATA/create-multiply.json"; then
    note "the controller does not accept nodejs20.x; Node.js not exercised"
  else
    fail "CreateFunction multiply gave $status: $(cat "$EF_DATA/create-multiply.json")"
  fi

  # The log tail, as the README reads it.
  local log
  log=$(curl -sS -D - -o /dev/null -H 'X-Amz-Log-Type: Tail' -X POST \
    "$EF_BASE/2015-03-31/functions/adder/invocations" -d '{"a": 1, "b": 2}' |
    tr -d '\r' | awk 'tolower($1) == "x-amz-log-result:" { print $2 }' | base64 -d)
  grep -q "got {'a': 1, 'b': 2}" <<<"$log" || fail "log tail lacks the function's output: $log"

  # The user containers are real: cgroups below funclet's own, those of the warm functions with
  # the functions' 128 MB (cold containers of funclet's pool may sit beside them with less).
  local limits warm
  limits=$(find "$FUNCLET_CGROUP/easyfaas" -mindepth 2 -maxdepth 2 -name memory.limit_in_bytes \
    -exec cat {} + 2>/dev/null | sort | tr '\n' ' ')
  warm=$(tr ' ' '\n' <<<"$limits" | grep -cx 134217728 || true)
  [ "$warm" -ge 2 ] ||
    fail "fewer than 2 user container cgroups of 128 MB below $FUNCLET_CGROUP/easyfaas (limits: $limits)"
}

# funclet_cgroup CONTAINER: the host directory of the container's memory cgroup.
funclet_cgroup() {
  local pid rel
  pid=$(podman inspect --format '{{.State.Pid}}' "$1") || fail "cannot inspect $1"
  rel=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$pid/cgroup")
  [ -n "$rel" ] || fail "no memory cgroup for $1"
  echo "/sys/fs/cgroup/memory$rel"
}

# assert_stopped_cleanly CONTAINER...: exit status 0 after SIGTERM, and funclet said so.
assert_stopped_cleanly() {
  local c code
  for c in "$@"; do
    code=$(podman inspect --format '{{.State.ExitCode}} {{.State.Status}}' "$c") ||
      fail "cannot inspect $c"
    [ "$code" = "0 exited" ] || fail "$c ended with '$code'; logs: $(podman logs "$c" 2>&1 | tail -n 20)"
  done
}

# assert_containers_destroyed FUNCLET: funclet's log shows every user container it created
# destroyed (by the controller as it stopped, or by funclet itself on SIGTERM) and its own stop.
assert_containers_destroyed() {
  local log created destroyed
  log=$(podman logs "$1" 2>&1) || fail "cannot read the logs of $1"
  created=$(grep -o 'container [0-9a-f]* created' <<<"$log" | awk '{print $2}' | sort)
  destroyed=$(grep -o 'container [0-9a-f]* destroyed' <<<"$log" | awk '{print $2}' | sort)
  [ -n "$created" ] || fail "funclet's log shows no container created"
  [ "$created" = "$destroyed" ] || fail "funclet did not destroy every container: $(tail -n 8 <<<"$log")"
  grep -Eq 'funclet\[[0-9]+\] INFO stopped' <<<"$log" || fail "funclet did not stop cleanly: $(tail -n 5 <<<"$log")"
}

# assert_nothing_left PORT CGROUP_DIR PIDS...: no listener on the port, no cgroup left of the
# funclet container and its user containers, none of the listed processes alive.
assert_nothing_left() {
  local port=$1 cg=$2 pid
  shift 2
  # Outputs are captured before grep: with pipefail, grep -q ending a pipe early would make the
  # writer's SIGPIPE hide a match.
  if [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; then
    fail "something still listens on port $port"
  fi
  if grep -q -- "--dport $port " <<<"$(iptables -t nat -S 2>/dev/null)"; then
    fail "a port forwarding rule for $port was left behind"
  fi
  [ ! -d "$cg" ] || fail "cgroup left behind: $cg ($(find "$cg" -type d | head -n 5 | tr '\n' ' '))"
  for pid in "$@"; do
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) left behind"
    fi
  done
}

# cgroup_pids DIR: every process in the cgroup tree (the user containers' runners and runtimes).
cgroup_pids() {
  find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | tr '\n' ' '
}
