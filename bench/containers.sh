#!/usr/bin/env bash
# Container benchmark (issue 3): funclet's container.create (cold, from nothing: with network
# "host", i.e. without a network namespace, and with one), container.warmup (the code mounted
# into the running container, limits raised), container.reset and container.destroy, next to
# what util-linux `unshare`, `bwrap` and `runc run` take to start and end a process in the same
# namespaces, and the floor of fork + exec of /bin/true. funclet runs twice, side by side: with
# its default user namespace per container (--userns auto, on where the kernel allows it) and
# with --userns off. Rounds of every tool are interleaved,
# so that each sees the same load; p50 and p99 are over all rounds. The CPU time per run (user
# + system of every process involved) is printed too: unlike latency it hardly depends on what
# else the machine runs.
#   EF_BUILD_DIR=build bench/containers.sh [runs per tool, default 200] [rounds, default 4]
set -euo pipefail
export EF_SOURCE_DIR=${EF_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
export EF_BUILD_DIR=${EF_BUILD_DIR:-$EF_SOURCE_DIR/build}
runs=${1:-200}
rounds=${2:-4}
per_round=$(((runs + rounds - 1) / rounds))
source "$EF_SOURCE_DIR/tests/integration/lib.sh"
require_root
for bin in easyfaas-funclet easyfaas-runner; do
  [ -x "$EF_BUILD_DIR/$bin" ] || fail "$EF_BUILD_DIR/$bin is not built"
done
command -v bwrap >/dev/null || fail "bwrap is missing (apt-get install bubblewrap)"

work=$(mktemp -d /tmp/ef-bench-ct.XXXXXX)
parent="ef-bench-$$"
funclet_pids=()
cleanup_bench() {
  local rc=$?
  for pid in "${funclet_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    # Started from a command substitution, so not this shell's child: wait by polling.
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  done
  find /sys/fs/cgroup -depth -type d \( -name "$parent" -o -name "$parent-nouserns" \) 2>/dev/null |
    while read -r d; do
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  grep -q " $work" /proc/self/mountinfo || rm -rf "$work"
  exit $rc
}
trap cleanup_bench EXIT

cc -O2 -o "$work/ef-bench-containers" "$EF_SOURCE_DIR/bench/ef-bench-containers.c"
tool="$work/ef-bench-containers"

# funclet with no pool, so that every create starts from nothing: start_funclet DIR PARENT FLAGS...
# prints the pid (and leaves the socket at DIR/run/funclet.sock).
start_funclet() {
  local dir=$1 cg=$2
  shift 2
  "$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$dir/runtime" >/dev/null
  mkdir -p "$dir/code/extracted/fn"
  echo 'def handler(event, context): return event' >"$dir/code/extracted/fn/app.py"
  "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$dir" --cgroup-parent "$cg" \
    --pool-size 0 --log-level warn "$@" 2>"$dir.log" >/dev/null &
  local pid=$!
  for _ in $(seq 200); do
    [ -S "$dir/run/funclet.sock" ] && break
    sleep 0.05
  done
  [ -S "$dir/run/funclet.sock" ] || fail "funclet did not start: $(cat "$dir.log")"
  echo "$pid"
}
funclet_pid=$(start_funclet "$work/data" "$parent")
funclet_pids+=("$funclet_pid")
sock="$work/data/run/funclet.sock"
plain_pid=$(start_funclet "$work/plain" "$parent-nouserns" --userns off)
funclet_pids+=("$plain_pid")
plain_sock="$work/plain/run/funclet.sock"
if grep -q "user namespace" "$work/data.log"; then
  note "funclet's default found no user namespace here: $(grep "user namespace" "$work/data.log")"
fi

# bwrap: a fresh root with the host's /usr read-only, /proc, /dev and a /tmp tmpfs, as funclet's.
bwrap_args=(--unshare-pid --unshare-uts --unshare-ipc --ro-bind /usr /usr --symlink usr/bin /bin
  --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --proc /proc
  --dev /dev --tmpfs /tmp --die-with-parent)

# runc: an OCI bundle whose root has the host's /usr bound read-only (runc makes the cgroups).
have_runc=false
if command -v runc >/dev/null; then
  have_runc=true
  for b in runc-net runc-nonet; do
    mkdir -p "$work/$b/rootfs/usr" "$work/$b/rootfs/tmp"
    for l in bin lib lib64 sbin; do ln -s "usr/$l" "$work/$b/rootfs/$l"; done
    (cd "$work/$b" && runc spec)
    /usr/bin/python3 - "$work/$b/config.json" "$b" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                    "options": ["rbind", "ro", "nosuid", "nodev"]})
if name == "runc-nonet":
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"))
PY
  done
fi

raw="$work/raw"
: >"$raw"
note "$rounds rounds of $per_round runs per tool (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for r in $(seq "$rounds"); do
  "$tool" rpc "$sock" "$per_round" host "$work/data/code/extracted/fn" "$funclet_pid" >>"$raw"
  "$tool" rpc "$sock" "$per_round" none "$work/data/code/extracted/fn" "$funclet_pid" >>"$raw"
  "$tool" rpc "$plain_sock" "$per_round" host "$work/plain/code/extracted/fn" "$plain_pid" |
    sed 's|^|nouserns/|' >>"$raw"
  "$tool" rpc "$plain_sock" "$per_round" none "$work/plain/code/extracted/fn" "$plain_pid" |
    sed 's|^|nouserns/|' >>"$raw"
  "$tool" exec "$per_round" true /bin/true >>"$raw"
  "$tool" exec "$per_round" unshare unshare --pid --fork --mount --uts --ipc /bin/true >>"$raw"
  "$tool" exec "$per_round" unshare+net unshare --pid --fork --mount --uts --ipc --net /bin/true >>"$raw"
  "$tool" exec "$per_round" bwrap bwrap "${bwrap_args[@]}" /bin/true >>"$raw"
  "$tool" exec "$per_round" bwrap+net bwrap "${bwrap_args[@]}" --unshare-net /bin/true >>"$raw"
  if $have_runc; then
    # `runc run` deletes its container when the process ends, so one id serves every run.
    "$tool" exec "$per_round" runc-nonet runc run --bundle "$work/runc-nonet" "efb-$$" >>"$raw"
    "$tool" exec "$per_round" runc-net runc run --bundle "$work/runc-net" "efb-$$" >>"$raw"
  fi
  note "round $r done"
done

/usr/bin/python3 - "$raw" <<'PY'
import collections, sys
samples = collections.defaultdict(list)
for line in open(sys.argv[1]):
    step, ms = line.split()
    samples[step].append(float(ms))
labels = [
    ("true", "floor: fork + exec + wait of /bin/true, no namespaces"),
    ("create/host", "funclet container.create, no network namespace (network \"host\")"),
    ("nouserns/create/host", "funclet container.create, no network namespace (network \"host\"), --userns off"),
    ("create/none", "funclet container.create, own network namespace (network \"none\")"),
    ("nouserns/create/none", "funclet container.create, own network namespace (network \"none\"), --userns off"),
    ("warmup/host", "funclet container.warmup (code mount, limits; no netns)"),
    ("nouserns/warmup/host", "funclet container.warmup (code mount, limits; no netns), --userns off"),
    ("warmup/none", "funclet container.warmup (code mount, limits; own netns)"),
    ("nouserns/warmup/none", "funclet container.warmup (code mount, limits; own netns), --userns off"),
    ("reset/host", "funclet container.reset (no netns)"),
    ("nouserns/reset/host", "funclet container.reset (no netns), --userns off"),
    ("reset/none", "funclet container.reset (own netns)"),
    ("nouserns/reset/none", "funclet container.reset (own netns), --userns off"),
    ("destroy/host", "funclet container.destroy (no netns)"),
    ("nouserns/destroy/host", "funclet container.destroy (no netns), --userns off"),
    ("destroy/none", "funclet container.destroy (own netns)"),
    ("nouserns/destroy/none", "funclet container.destroy (own netns), --userns off"),
    ("unshare", "unshare --pid --fork --mount --uts --ipc /bin/true"),
    ("unshare+net", "unshare --pid --fork --mount --uts --ipc --net /bin/true"),
    ("bwrap", "bwrap, new root, pid/uts/ipc namespaces, /bin/true"),
    ("bwrap+net", "the same with --unshare-net"),
    ("runc-nonet", "runc run /bin/true (OCI bundle, no network namespace)"),
    ("runc-net", "runc run /bin/true (OCI bundle, with network namespace)"),
]
print("| operation | runs | p50 ms | p99 ms |")
print("|---|---:|---:|---:|")
for key, label in labels:
    v = sorted(samples.get(key, []))
    if not v:
        continue
    p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
    print("| %s | %d | %.2f | %.2f |" % (label, len(v), v[len(v) // 2], p99))
print()
print("CPU time (user + system, all processes involved) per run, mean over the rounds:")
print()
print("| what | CPU ms |")
print("|---|---:|")
cpu = [
    ("cpu/cycle/host", "funclet: create + warmup + reset + destroy, no netns (runner start included)"),
    ("nouserns/cpu/cycle/host", "funclet: create + warmup + reset + destroy, no netns (runner start included), --userns off"),
    ("cpu/cycle/none", "funclet: create + warmup + reset + destroy, own netns (runner start included)"),
    ("nouserns/cpu/cycle/none", "funclet: create + warmup + reset + destroy, own netns (runner start included), --userns off"),
    ("cpu/true", "/bin/true"),
    ("cpu/unshare", "unshare, no netns"),
    ("cpu/unshare+net", "unshare with --net"),
    ("cpu/bwrap", "bwrap, no netns"),
    ("cpu/bwrap+net", "bwrap with --unshare-net"),
    ("cpu/runc-nonet", "runc run, no netns"),
    ("cpu/runc-net", "runc run with netns"),
]
for key, label in cpu:
    v = samples.get(key, [])
    if v:
        print("| %s | %.2f |" % (label, sum(v) / len(v)))
PY
note "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
