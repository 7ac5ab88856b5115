#!/usr/bin/env bash
# Runs a whole EasyFaaS pod bare-metal in the foreground: installs missing Debian packages,
# builds, installs the runtimes (`runner prepare`), starts funclet and controller, registers the
# sample function `hello`, and prints the curl line that invokes it.
# Ctrl-C, SIGTERM or SIGHUP stops everything (exit status 0); funclet removes every container,
# cgroup and mount it made.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: deploy/all-in-one.sh [options]

Options:
  --data-dir DIR      where functions, code, runtimes and sockets live (default /var/lib/easyfaas)
  --port N            controller HTTP port, 1-65535 (default 8080)
  --listen ADDR       controller listen address (default 127.0.0.1; 0.0.0.0 exposes it)
  --build-dir DIR     CMake build directory (default <source>/build)
  --log-level L       debug, info, warn or error (default info)
  --bridge-cidr CIDR  network of the functions with NetworkMode bridge (default: see below)
  --userns-base N     first host uid of the containers' user namespaces (default: auto, below)
  -h, --help          this text

Two instances can run side by side with different --data-dir and --port. What else must differ
between the pods of one host is derived from the port:
  cgroup parent   easyfaas-<port>
  bridge          ef<port>, on the first /24 of 172.31.0.0/16, from 172.31.<port mod 256>.0/24
                  on, that no route of the host overlaps (a pod makes its bridge at its first
                  function with NetworkMode bridge: one not made yet is not seen)
  host ids        --userns-base auto: each funclet takes the lowest range of 64 * 65536 host
                  ids from 1000000 on that no other funclet of the host holds (an explicit
                  --userns-base that overlaps another funclet's is refused, naming a free base)
Ctrl-C, SIGTERM and SIGHUP stop the pod in order (controller, then funclet) and the script exits
with status 0; a daemon that ends by itself makes it exit with status 1.
USAGE
}

src=$(cd "$(dirname "$0")/.." && pwd)
data_dir=/var/lib/easyfaas
port=8080
listen=127.0.0.1
build_dir=$src/build
log_level=info
bridge_cidr=
userns_base=

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
    --bridge-cidr) bridge_cidr=${2:?--bridge-cidr needs a value}; shift 2 ;;
    --bridge-cidr=*) bridge_cidr=${1#*=}; shift ;;
    --userns-base) userns_base=${2:?--userns-base needs a value}; shift 2 ;;
    --userns-base=*) userns_base=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "all-in-one: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
case "$port" in
  '' | *[!0-9]* | ??????*) echo "all-in-one: --port must be a number from 1 to 65535, not '$port'" >&2; exit 2 ;;
esac
port=$((10#$port))
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "all-in-one: --port must be a number from 1 to 65535, not $port" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "all-in-one: funclet creates namespaces, cgroups and mounts; run as root" >&2
  exit 1
fi

say() { echo "all-in-one: $*" >&2; }

# ip_int A.B.C.D: the address as a number.
ip_int() {
  local IFS=.
  # shellcheck disable=SC2086 # split on the dots on purpose
  set -- $1
  echo $((($1 << 24) | ($2 << 16) | ($3 << 8) | $4))
}

# free_cidr: the first 172.31.N.0/24, N from port mod 256 on, that no route of the host overlaps
# (routes through this pod's own bridge aside: they are a previous run's, which funclet removes).
free_cidr() {
  local routes n net dest len other mask taken
  routes=$(ip -4 -o route show table all 2>/dev/null |
    awk -v own="ef$port" '$1 ~ /^[0-9.]+(\/[0-9]+)?$/ && $0 !~ (" dev " own " ") { print $1 }')
  for i in $(seq 0 255); do
    n=$(((port + i) % 256))
    net=$(ip_int "172.31.$n.0")
    taken=
    for dest in $routes; do
      len=${dest#*/}
      [ "$len" = "$dest" ] && len=32
      [ "$len" -gt 24 ] && mask=24 || mask=$len
      other=$(ip_int "${dest%/*}")
      mask=$(((0xffffffff << (32 - mask)) & 0xffffffff))
      [ "$mask" -eq 0 ] && continue # the default route overlaps everything
      if [ $((net & mask)) -eq $((other & mask)) ]; then taken=1; break; fi
    done
    [ -z "$taken" ] && { echo "172.31.$n.0/24"; return 0; }
  done
  return 1
}

"$src/deploy/lib/install-deps.sh" build
say "building in $build_dir"
# A new build directory gets the programs only (the tests need cmocka, which `install-deps.sh
# build` does not install); one configured before (the test suite's) keeps its settings.
configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ -f "$build_dir/CMakeCache.txt" ] || configure+=(-DEF_BUILD_TESTS=OFF)
cmake -S "$src" -B "$build_dir" "${configure[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target easyfaas-controller easyfaas-funclet easyfaas-runner >/dev/null

if [ -z "$bridge_cidr" ]; then
  bridge_cidr=$(free_cidr) || { say "no /24 of 172.31.0.0/16 is free; give --bridge-cidr"; exit 1; }
fi
[ -n "$userns_base" ] || userns_base=auto

mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
"$build_dir/easyfaas-runner" prepare --dest "$data_dir/runtime"

funclet_pid=
controller_pid=
stopping=
stop() {
  trap - INT TERM HUP EXIT
  stopping=1
  say "stopping"
  [ -n "$controller_pid" ] && kill -TERM "$controller_pid" 2>/dev/null || true
  [ -n "$controller_pid" ] && wait "$controller_pid" 2>/dev/null || true
  [ -n "$funclet_pid" ] && kill -TERM "$funclet_pid" 2>/dev/null || true
  [ -n "$funclet_pid" ] && wait "$funclet_pid" 2>/dev/null || true
  say "stopped"
}
trap 'stop; exit 0' INT TERM HUP
trap 'stop' EXIT

# The daemons run in sessions of their own, so that the terminal's Ctrl-C (sent to its whole
# foreground process group) reaches this script alone, which stops them in order: the
# controller first, then funclet, which destroys the containers. They would otherwise exit
# together, before the trap has run, and look as if they had failed. setsid(1) does not fork
# here (a background job is no group leader), so $! is the daemon itself.
say "funclet: bridge ef$port on $bridge_cidr, host ids --userns-base $userns_base, cgroup easyfaas-$port"
setsid "$build_dir/easyfaas-funclet" --data-dir "$data_dir" --cgroup-parent "easyfaas-$port" \
  --bridge-name "ef$port" --bridge-cidr "$bridge_cidr" --userns-base "$userns_base" \
  --log-level "$log_level" &
funclet_pid=$!
for _ in $(seq 100); do
  [ -S "$data_dir/run/funclet.sock" ] && break
  kill -0 "$funclet_pid" 2>/dev/null || { say "funclet failed to start"; exit 1; }
  sleep 0.05
done

setsid "$build_dir/easyfaas-controller" --data-dir "$data_dir" --listen "$listen" --port "$port" \
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
# A stop that was asked for is not a failure, even if a daemon noticed the signal first.
[ -n "$stopping" ] && exit 0
say "a daemon exited unexpectedly"
exit 1
