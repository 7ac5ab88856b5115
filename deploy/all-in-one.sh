#!/usr/bin/env bash
# Runs a whole EasyFaaS pod bare-metal in the foreground: installs missing Debian packages,
# builds, installs the runtimes (`runner prepare`), starts funclet and controller, registers the
# sample function `hello`, and prints the curl line that invokes it.
# Ctrl-C or SIGTERM stops everything; funclet removes every container, cgroup and mount it made.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: deploy/all-in-one.sh [options]

Options:
  --data-dir DIR    where functions, code, runtimes and sockets live (default /var/lib/easyfaas)
  --port N          controller HTTP port (default 8080)
  --listen ADDR     controller listen address (default 127.0.0.1; 0.0.0.0 exposes it)
  --build-dir DIR   CMake build directory (default <source>/build)
  --log-level L     debug, info, warn or error (default info)
  -h, --help        this text

Two instances can run side by side with different --data-dir and --port.
USAGE
}

src=$(cd "$(dirname "$0")/.." && pwd)
data_dir=/var/lib/easyfaas
port=8080
listen=127.0.0.1
build_dir=$src/build
log_level=info

while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir=${2:?--data-dir needs a value}; shift 2 ;;
    --data-dir=*) data_dir=${1#*=}; shift ;;
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --port=*) port=${1#*=}; shift ;;
    --listen) listen=${2:?--listen needs a value}; shift 2 ;;
    --listen=*) listen=${1#*=}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a value}; shift 2 ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --log-level) log_level=${2:?--log-level needs a value}; shift 2 ;;
    --log-level=*) log_level=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "all-in-one: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
case "$port" in ''|*[!0-9]*) echo "all-in-one: --port must be a number" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
  echo "all-in-one: funclet creates namespaces, cgroups and mounts; run as root" >&2
  exit 1
fi

say() { echo "all-in-one: $*" >&2; }

"$src/deploy/lib/install-deps.sh" build
say "building in $build_dir"
# A new build directory gets the programs only (the tests need cmocka, which `install-deps.sh
# build` does not install); one configured before (the test suite's) keeps its settings.
configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ -f "$build_dir/CMakeCache.txt" ] || configure+=(-DEF_BUILD_TESTS=OFF)
cmake -S "$src" -B "$build_dir" "${configure[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target easyfaas-controller easyfaas-funclet easyfaas-runner >/dev/null

mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
"$build_dir/easyfaas-runner" prepare --dest "$data_dir/runtime"

funclet_pid=
controller_pid=
stop() {
  trap - INT TERM EXIT
  say "stopping"
  [ -n "$controller_pid" ] && kill -TERM "$controller_pid" 2>/dev/null || true
  [ -n "$controller_pid" ] && wait "$controller_pid" 2>/dev/null || true
  [ -n "$funclet_pid" ] && kill -TERM "$funclet_pid" 2>/dev/null || true
  [ -n "$funclet_pid" ] && wait "$funclet_pid" 2>/dev/null || true
  say "stopped"
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

"$build_dir/easyfaas-funclet" --data-dir "$data_dir" --cgroup-parent "easyfaas-$port" \
  --log-level "$log_level" &
funclet_pid=$!
for _ in $(seq 100); do
  [ -S "$data_dir/run/funclet.sock" ] && break
  kill -0 "$funclet_pid" 2>/dev/null || { say "funclet failed to start"; exit 1; }
  sleep 0.05
done

"$build_dir/easyfaas-controller" --data-dir "$data_dir" --listen "$listen" --port "$port" \
  --log-level "$log_level" &
controller_pid=$!
host=$listen
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
case "$host" in *:*) host="[$host]" ;; esac
base="http://$host:$port"
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$controller_pid" 2>/dev/null || { say "controller failed to start"; exit 1; }
  sleep 0.05
done

# Register the sample function (kept from an earlier run when it is already there).
zip=$(mktemp --suffix=.zip)
/usr/bin/python3 "$src/deploy/lib/zip-dir.py" "$src/deploy/examples/hello" "$zip"
body=$(mktemp)
printf '{"FunctionName":"hello","Runtime":"python3.11","Handler":"lambda_function.handler","MemorySize":128,"Timeout":10,"Code":{"ZipFile":"%s"}}' \
  "$(base64 -w0 "$zip")" >"$body"
status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/2015-03-31/functions" \
  -H 'Content-Type: application/json' --data-binary @"$body")
rm -f "$zip" "$body"
case "$status" in
  201) say "registered the sample function 'hello'" ;;
  409) say "the sample function 'hello' is already registered" ;;
  *) say "registering 'hello' failed with HTTP $status"; exit 1 ;;
esac

cat <<EOF2

EasyFaaS is running (data in $data_dir). Invoke the sample function with:

  curl -s -X POST $base/2015-03-31/functions/hello/invocations -d '{"name": "EasyFaaS"}'

Press Ctrl-C to stop.
EOF2

# Stay in the foreground until a signal arrives or a daemon dies.
while kill -0 "$funclet_pid" 2>/dev/null && kill -0 "$controller_pid" 2>/dev/null; do
  wait -n "$funclet_pid" "$controller_pid" 2>/dev/null || true
done
say "a daemon exited unexpectedly"
exit 1
