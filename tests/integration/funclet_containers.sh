#!/usr/bin/env bash
# funclet on its own, driven over its RPC socket as the controller would: containers are real
# kernel objects (namespaces, cgroups, a private root) and nothing of them outlives a destroy, a
# failed create or funclet's shutdown. Runs without a pool (--pool-size 0), so that every
# container.create makes its container then and there; funclet_pool.sh covers the pool. Needs
# root; exits 77 (skipped) without it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/funclet_lib.sh"

require_root
require_built easyfaas-funclet easyfaas-runner ef-rpc-call

DATA=$(mktemp -d /tmp/ef-funclet.XXXXXX)
PARENT="ef-ftest-$$"
SOCK="$DATA/run/funclet.sock"
FUNCLET_PID=

cleanup() {
  local rc=$?
  kill_funclet
  [ $rc -eq 0 ] || show_funclet_log 40
  remove_cgroups "$PARENT"
  remove_data "$DATA"
  exit $rc
}
trap cleanup EXIT

call() { "$EF_BUILD_DIR/ef-rpc-call" "$SOCK" "$@"; }
mode() { stat -c %a "$1"; }
cgroup_of() { # cgroup_of PID CONTROLLER: the process's cgroup path in that hierarchy
  awk -F: -v c="$2" '$2 == c { print $3 }' "/proc/$1/cgroup"
}

note "installing the runner and starting funclet"
"$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$DATA/runtime" >/dev/null
mkdir -p "$DATA/code/extracted/fn1" "$DATA/code/extracted/fn2"
echo 'def handler(event, context): return event' >"$DATA/code/extracted/fn1/app.py"
ln -s /etc "$DATA/code/extracted/escape"
"$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" \
  --userns-base "$EF_USERNS_BASE" --max-containers 2 --tmp-size 64M --pool-size 0 --log-level debug 2>"$DATA/funclet.log" &
FUNCLET_PID=$!
wait_funclet "$SOCK" "$DATA/funclet.log"
[ "$(mode "$SOCK")" = 600 ] || fail "funclet.sock has mode $(mode "$SOCK"), want 600"
[ "$(mode "$DATA/run")" = 700 ] || fail "run/ has mode $(mode "$DATA/run"), want 700"

MEM_OWN=$(cgroup_of "$FUNCLET_PID" memory)
PIDS_OWN=$(cgroup_of "$FUNCLET_PID" pids)
MEM_PARENT="/sys/fs/cgroup/memory${MEM_OWN%/}/$PARENT"
PIDS_PARENT="/sys/fs/cgroup/pids${PIDS_OWN%/}/$PARENT"

info=$(call node.info)
[ "$(echo "$info" | json 'j["cgroup_version"]')" = 1 ] || fail "node.info: $info"
[ "$(echo "$info" | json 'j["max_containers"]')" = 2 ] || fail "node.info: $info"
[ "$(echo "$info" | json 'j["memory_total_mb"] > 0')" = True ] || fail "node.info: $info"

note "the host side of the next container is made ahead, hidden, with its cgroups"
NEXT=$(settled parts_ahead)
[[ "$NEXT" =~ ^\.[0-9a-f]{12}$ ]] || fail "no parts made ahead in run/containers: $(ls -A "$DATA/run/containers")"
[ -S "$DATA/run/containers/$NEXT/runner.sock" ] || fail "no runner socket made ahead"
[ "$(mode "$DATA/run/containers/$NEXT")" = 700 ] || fail "the directory made ahead is not 0700"
grep -q " $DATA/run/containers/$NEXT/mnt " /proc/self/mountinfo || fail "no shared mount point made ahead"
[ -d "$MEM_PARENT/c${NEXT#.}" ] && [ -d "$PIDS_PARENT/c${NEXT#.}" ] || fail "no cgroups made ahead"
[ -z "$(ls "$DATA/run/containers")" ] || fail "run/containers lists $(ls "$DATA/run/containers") before any create"

note "creating a container"
# On this kernel (open_tree, Linux 5.2) children are cloned from the spawn namespace, without
# the containers' mounts; the code-mount and /tmp checks below and in funclet_pool.sh show
# that the shared mount point they attach still carries what funclet mounts later.
! grep -q "cloned from funclet's own mount namespace" "$DATA/funclet.log" ||
  fail "no spawn namespace: $(grep "cloned from funclet's own" "$DATA/funclet.log")"
res=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn1\",\"memory_mb\":128,\"pids_max\":100}")
ID=$(echo "$res" | json 'j["id"]')
[ "$ID" = "c${NEXT#.}" ] || fail "the create made $ID instead of taking the parts made ahead ($NEXT)"
[ ! -e "$DATA/run/containers/$NEXT" ] || fail "the parts made ahead kept their hidden name"
NEXT2=$(settled parts_ahead)
[[ "$NEXT2" =~ ^\.[0-9a-f]{12}$ ]] && [ "$NEXT2" != "$NEXT" ] || fail "no new parts made ahead after a create: '$NEXT2'"
PID=$(echo "$res" | json 'j["pid"]')
RSOCK=$(echo "$res" | json 'j["runner_socket"]')
[[ "$ID" =~ ^c[0-9a-f]{12}$ ]] || fail "bad container id '$ID'"
[ "$RSOCK" = "$DATA/run/containers/$ID/runner.sock" ] || fail "runner_socket is $RSOCK"
[ -S "$RSOCK" ] || fail "runner socket $RSOCK missing"
[ "$(mode "$RSOCK")" = 600 ] || fail "runner socket has mode $(mode "$RSOCK"), want 600"
[ "$(mode "$DATA/run/containers/$ID")" = 700 ] || fail "container dir is not 0700"
kill -0 "$PID" || fail "runner $PID is not running"
# Its lines in funclet's log name its container.
for _ in $(seq 100); do
  grep -q "runner:$ID\[1\] INFO ready" "$DATA/funclet.log" && break
  sleep 0.05
done
grep -q "runner:$ID\[1\] INFO ready" "$DATA/funclet.log" ||
  fail "the runner's log lines do not name container $ID: $(grep 'runner' "$DATA/funclet.log" | tail -3)"
tr '\0' ' ' <"/proc/$PID/cmdline" | grep -q "^easyfaas-runner init --rpc-fd 3 --uid 1001 --gid 1001" ||
  fail "runner command line: $(tr '\0' ' ' <"/proc/$PID/cmdline")"

note "namespaces"
for ns in pid mnt net uts ipc; do
  [ "$(readlink "/proc/$PID/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")" ] ||
    fail "container shares the host's $ns namespace"
done
[ "$(nsenter -t "$PID" -u hostname)" = "$ID" ] || fail "hostname is not the container id"
nsenter -t "$PID" -n ip -o link show lo | grep -q '<LOOPBACK,UP' || fail "lo is not up"
[ "$(nsenter -t "$PID" -n ip -o link show | wc -l)" = 1 ] || fail "the netns has more than lo"

note "cgroups"
[ "$(cgroup_of "$PID" memory)" = "${MEM_OWN%/}/$PARENT/$ID" ] ||
  fail "runner's memory cgroup is $(cgroup_of "$PID" memory)"
[ "$(cgroup_of "$PID" pids)" = "${PIDS_OWN%/}/$PARENT/$ID" ] ||
  fail "runner's pids cgroup is $(cgroup_of "$PID" pids)"
[ "$(cat "$MEM_PARENT/$ID/memory.limit_in_bytes")" = $((128 * 1024 * 1024)) ] ||
  fail "memory limit is $(cat "$MEM_PARENT/$ID/memory.limit_in_bytes")"
[ "$(cat "$PIDS_PARENT/$ID/pids.max")" = 100 ] || fail "pids.max is $(cat "$PIDS_PARENT/$ID/pids.max")"
# The child is held on one CPU through its exec; the runner takes funclet's CPUs back (--cpus),
# so that it and its runtimes are not left on one CPU (on a machine of one CPU this cannot tell).
note "the runner runs SCHED_BATCH (--container-sched-policy batch, the default)"
[ "$(sched_policy_of "$PID")" = 3 ] || fail "the runner's scheduling policy is $(sched_policy_of "$PID"), want 3 (SCHED_BATCH)"
[ "$(sched_policy_of "$FUNCLET_PID")" = "$(sched_policy_of $$)" ] ||
  fail "funclet changed its own scheduling policy to $(sched_policy_of "$FUNCLET_PID")"
cpus_of() { awk '/^Cpus_allowed_list/ {print $2}' "/proc/$1/status"; }
[ "$(cpus_of "$PID")" = "$(cpus_of "$FUNCLET_PID")" ] ||
  fail "the runner runs on CPUs $(cpus_of "$PID"), funclet on $(cpus_of "$FUNCLET_PID")"

note "root file system"
inside() { nsenter -t "$PID" -a /bin/sh -c "$1"; }
inside 'touch /x' 2>/dev/null && fail "the root is writable"
inside 'touch /var/task/x' 2>/dev/null && fail "/var/task is writable"
inside 'touch /usr/x' 2>/dev/null && fail "/usr is writable"
inside 'touch /tmp/x && rm /tmp/x' || fail "/tmp is not writable"
inside 'cat /var/task/app.py' | grep -q handler || fail "/var/task does not hold the code"
inside '[ -x /var/runtime/bin/easyfaas-runner ]' || fail "/var/runtime is not mounted"
inside 'grep -q "^sbx_user:x:1001:1001:" /etc/passwd' || fail "/etc/passwd lacks sbx_user"
inside '[ ! -e /etc/shadow ]' || fail "the host's /etc/shadow is visible"
inside "[ ! -e '$DATA' ] && [ ! -e /run ]" || fail "host directories are visible"
inside 'echo x >/dev/null && head -c 4 /dev/urandom >/dev/null' || fail "/dev is incomplete"
inside 'grep " /tmp " /proc/self/mounts' | grep -q 'size=65536k' || fail "/tmp is not 64M"
inside 'tr "\0" " " </proc/1/cmdline' | grep -q '^easyfaas-runner init' || fail "/proc/1 is not the runner"
[ "$(inside 'ls /proc | grep -c "^[0-9]"')" -le 5 ] || fail "/proc shows host processes"

note "no fd of funclet reaches the runner"
fd_targets() { for f in /proc/"$1"/fd/*; do
  case "${f##*/}" in 0 | 1 | 2) ;; *) readlink "$f" || true ;; esac
done | grep -E '^(socket|pipe):' | sort -u; }
shared=$(comm -12 <(fd_targets "$FUNCLET_PID") <(fd_targets "$PID"))
[ -z "$shared" ] || fail "runner inherited funclet's fds: $shared"

note "container.list"
list=$(call container.list)
[ "$(echo "$list" | json "[c['state'] for c in j['containers'] if c['id'] == '$ID']")" = "['warm']" ] ||
  fail "container.list: $list"

note "invalid requests"
[ "$(call_error container.create '{"code_dir":"/etc","memory_mb":128}')" = -32602 ] || fail "code_dir /etc accepted"
[ "$(call_error container.create '{"code_dir":"code/extracted/fn1","memory_mb":128}')" = -32602 ] ||
  fail "relative code_dir accepted"
[ "$(call_error container.create "{\"code_dir\":\"$DATA/code/extracted/escape\",\"memory_mb\":128}")" = -32602 ] ||
  fail "symlink escape accepted"
[ "$(call_error container.create "{\"code_dir\":\"$DATA/code/extracted/fn1\",\"memory_mb\":32}")" = -32602 ] ||
  fail "memory_mb 32 accepted"
[ "$(call_error container.destroy '{"id":"c000000000000"}')" = -32010 ] || fail "unknown id not -32010"
[ "$(call_error container.destroy '{"id":"../../etc"}')" = -32602 ] || fail "bad id not -32602"
[ "$(call_error container.frobnicate '{}')" = -32601 ] || fail "unknown method not -32601"

note "a failing create leaves nothing behind"
count_cgroups() { find "$MEM_PARENT" "$PIDS_PARENT" -mindepth 1 -type d | wc -l; }
before=$(settled count_cgroups)
mv "$DATA/runtime/bin/easyfaas-runner" "$DATA/runtime/bin/runner.moved"
if out=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn2\",\"memory_mb\":128}" 2>&1); then
  fail "create without a runner succeeded: $out"
fi
mv "$DATA/runtime/bin/runner.moved" "$DATA/runtime/bin/easyfaas-runner"
echo "$out" | grep -q '"code":-32013' || fail "failed create: $out"
echo "$out" | grep -q 'exec /var/runtime/bin/easyfaas-runner: No such file or directory' ||
  fail "failed create does not name the step: $out"
after=$(settled count_cgroups)
[ "$after" = "$before" ] || fail "failed create left a cgroup ($before cgroups before, $after after)"
# A child that fails while funclet is still putting it into its cgroups (here: building its
# root, whose runtime directory is gone) is reported by its step, not by the broken pipe funclet
# meets on its next word to the child.
mv "$DATA/runtime" "$DATA/runtime.moved"
for _ in $(seq 10); do
  if out=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn2\",\"memory_mb\":128}" 2>&1); then
    mv "$DATA/runtime.moved" "$DATA/runtime"
    fail "create without a runtime directory succeeded: $out"
  fi
  echo "$out" | grep -q "$DATA/runtime" || { mv "$DATA/runtime.moved" "$DATA/runtime"; fail "the failed step is not named: $out"; }
done
mv "$DATA/runtime.moved" "$DATA/runtime"
# A cgroup attach that fails once the child is building its root (the freezer, attached last,
# here removed from the parts made ahead) is reported as such at once, not as a start timeout.
FRZ_PARENT="/sys/fs/cgroup/freezer$(cgroup_of "$FUNCLET_PID" freezer | sed 's|/$||')/$PARENT"
NEXT=$(settled parts_ahead)
if [ -d "$FRZ_PARENT/c${NEXT#.}" ]; then
  rmdir "$FRZ_PARENT/c${NEXT#.}"
  if out=$(call container.create '{}' 2>&1); then
    fail "create without its freezer cgroup succeeded: $out"
  fi
  echo "$out" | grep -q "freezer.*cgroup.procs" || fail "the failed attach is not named: $out"
fi
[ "$(ls "$DATA/run/containers")" = "$ID" ] || fail "failed create left a directory: $(ls "$DATA/run/containers")"

note "capacity and container.exited"
res2=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn2\",\"memory_mb\":64}")
ID2=$(echo "$res2" | json 'j["id"]')
PID2=$(echo "$res2" | json 'j["pid"]')
[ "$(call_error container.create "{\"code_dir\":\"$DATA/code/extracted/fn2\",\"memory_mb\":64}")" = -32012 ] ||
  fail "--max-containers not enforced"
# Each runner is watched through a pidfd (the kernel here has them): one per live container.
pidfds() { find "/proc/$FUNCLET_PID/fd" -lname 'anon_inode:*pidfd*' 2>/dev/null | wc -l; }
[ "$(pidfds)" = 2 ] || fail "funclet holds $(pidfds) pidfds for 2 containers"
"$EF_BUILD_DIR/ef-rpc-call" --timeout 5000 --notifications 1 "$SOCK" node.info >"$DATA/notes" &
LISTENER=$!
for _ in $(seq 100); do [ -s "$DATA/notes" ] && break; sleep 0.05; done
kill -KILL "$PID2"
wait "$LISTENER" || fail "no notification arrived"
note="$(tail -n 1 "$DATA/notes")"
[ "$(echo "$note" | json 'j["method"]')" = container.exited ] || fail "notification: $note"
[ "$(echo "$note" | json 'j["params"]')" = "{'id': '$ID2', 'pid': $PID2, 'status': 'signal: killed'}" ] ||
  fail "notification: $note"
[ ! -e "/proc/$PID2" ] || fail "the dead runner $PID2 was not reaped"
[ "$(pidfds)" = 1 ] || fail "the reaped runner's pidfd is still open ($(pidfds) pidfds)"
list=$(call container.list)
[ "$(echo "$list" | json "[c['state'] for c in j['containers'] if c['id'] == '$ID2']")" = "['exited']" ] ||
  fail "container.list after exit: $list"
call container.destroy "{\"id\":\"$ID2\"}" >/dev/null
[ ! -e "$MEM_PARENT/$ID2" ] && [ ! -e "$PIDS_PARENT/$ID2" ] || fail "exited container's cgroups remain"

note "destroy"
[ "$(call container.destroy "{\"id\":\"$ID\"}")" = "{}" ] || fail "destroy did not answer {}"
[ ! -e "/proc/$PID" ] || fail "runner $PID still exists after destroy"
[ ! -e "$MEM_PARENT/$ID" ] || fail "memory cgroup left: $MEM_PARENT/$ID"
[ ! -e "$PIDS_PARENT/$ID" ] || fail "pids cgroup left: $PIDS_PARENT/$ID"
[ ! -e "$DATA/run/containers/$ID" ] || fail "container directory left"
! grep -q "$ID" /proc/self/mountinfo || fail "a mount of $ID is left"
[ "$(call container.list)" = '{"containers":[]}' ] || fail "list after destroy: $(call container.list)"

note "two creates at once: one whose child is held does not hold up the other"
# The parts made ahead are taken by the first create; their freezer cgroup, frozen now, stops
# that child once funclet has put it there. The second create makes its own parts meanwhile.
NEXT=$(settled parts_ahead)
if [ -d "$FRZ_PARENT/c${NEXT#.}" ]; then
  echo FROZEN >"$FRZ_PARENT/c${NEXT#.}/freezer.state"
  call container.create '{}' >"$DATA/held.out" 2>&1 &
  HELD=$!
  for _ in $(seq 100); do [ -d "$DATA/run/containers/c${NEXT#.}" ] && break; sleep 0.02; done
  [ -d "$DATA/run/containers/c${NEXT#.}" ] || fail "the first create did not take the parts made ahead"
  res6=$(call container.create '{}') || fail "the second create failed while the first was held: $res6"
  kill -0 "$HELD" 2>/dev/null || fail "the held create answered before it was let go: $(cat "$DATA/held.out")"
  echo THAWED >"$FRZ_PARENT/c${NEXT#.}/freezer.state"
  wait "$HELD" || fail "the held create failed once let go: $(cat "$DATA/held.out")"
  for id in "c${NEXT#.}" "$(echo "$res6" | json 'j["id"]')"; do
    call container.destroy "{\"id\":\"$id\"}" >/dev/null
  done
fi

note "a directory that holds the name of the set made ahead is left alone"
# An empty directory is what rename(2) would replace; the create must leave it and make a
# container of another id.
NEXT=$(settled parts_ahead)
STRAY="$DATA/run/containers/c${NEXT#.}"
mkdir "$STRAY"
stray_inode=$(stat -c %i "$STRAY")
res7=$(call container.create '{}') || fail "a create next to a directory of the taken name failed: $res7"
ID7=$(echo "$res7" | json 'j["id"]')
[ "$ID7" != "c${NEXT#.}" ] || fail "the create took the name of a directory that was there"
[ "$(stat -c %i "$STRAY")" = "$stray_inode" ] && [ -z "$(ls -A "$STRAY")" ] ||
  fail "the directory that was there was replaced: $(ls -A "$STRAY")"
[ ! -e "$DATA/run/containers/$NEXT" ] || fail "the set made ahead stayed under its hidden name"
grep -q "container c${NEXT#.}: cannot use the parts made ahead: rename .*: File exists" "$DATA/funclet.log" ||
  fail "the refused rename is not logged"
[ ! -d "$MEM_PARENT/c${NEXT#.}" ] || fail "the cgroups of the set made ahead were left"
call container.destroy "{\"id\":\"$ID7\"}" >/dev/null
rmdir "$STRAY"

note "SIGTERM destroys what is left and removes everything"
res3=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn1\",\"memory_mb\":128}")
PID3=$(echo "$res3" | json 'j["pid"]')
kill -TERM "$FUNCLET_PID"
wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
FUNCLET_PID=
[ ! -e "/proc/$PID3" ] || fail "runner $PID3 survived funclet's shutdown"
[ ! -e "$SOCK" ] || fail "funclet.sock left behind"
[ -z "$(ls "$DATA/run/containers")" ] || fail "container directories left: $(ls "$DATA/run/containers")"
leftovers=$(find /sys/fs/cgroup -type d -name "$PARENT" 2>/dev/null || true)
[ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
! grep -q " $DATA" /proc/self/mountinfo || fail "mounts left behind"

note "a scheduling policy funclet does not know is refused"
if "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --container-sched-policy fifo \
  2>"$DATA/funclet-policy.log"; then
  fail "funclet started with --container-sched-policy fifo"
fi
grep -q "container-sched-policy must be batch or other, not 'fifo'" "$DATA/funclet-policy.log" ||
  fail "no clear error for --container-sched-policy fifo: $(cat "$DATA/funclet-policy.log")"

note "without CAP_SYS_CHROOT (no setns) children are cloned from funclet's own namespace;"
note "with --container-sched-policy other, they run SCHED_OTHER"
setpriv --bounding-set -sys_chroot "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" \
  --cgroup-parent "$PARENT" --userns-base "$EF_USERNS_BASE" --max-containers 2 --pool-size 0 \
  --container-sched-policy other 2>"$DATA/funclet-nochroot.log" &
FUNCLET_PID=$!
wait_funclet "$SOCK" "$DATA/funclet-nochroot.log"
grep -q "cloned from funclet's own mount namespace" "$DATA/funclet-nochroot.log" ||
  fail "no warning without CAP_SYS_CHROOT: $(cat "$DATA/funclet-nochroot.log")"
res5=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn1\",\"memory_mb\":128}") ||
  fail "create without CAP_SYS_CHROOT: $res5"
PID5=$(echo "$res5" | json 'j["pid"]')
kill -0 "$PID5" || fail "the runner made without CAP_SYS_CHROOT is not running"
[ "$(sched_policy_of "$PID5")" = 0 ] || fail "--container-sched-policy other: the runner's policy is $(sched_policy_of "$PID5")"
kill -TERM "$FUNCLET_PID"
wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
FUNCLET_PID=
! grep -q " $DATA" /proc/self/mountinfo || fail "mounts left behind"

if [ "$(nproc)" -ge 2 ]; then
  note "funclet pinned by its operator: its runners keep that set, not every CPU"
  taskset -c 1 "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" \
    --userns-base "$EF_USERNS_BASE" --max-containers 2 --pool-size 0 2>>"$DATA/funclet.log" &
  FUNCLET_PID=$!
  wait_funclet "$SOCK" "$DATA/funclet.log"
  res4=$(call container.create "{\"code_dir\":\"$DATA/code/extracted/fn1\",\"memory_mb\":128}")
  PID4=$(echo "$res4" | json 'j["pid"]')
  [ "$(cpus_of "$PID4")" = 1 ] || fail "the runner of a funclet on CPU 1 runs on CPUs $(cpus_of "$PID4")"
  kill -TERM "$FUNCLET_PID"
  wait "$FUNCLET_PID" || fail "funclet exited with status $? on SIGTERM"
  FUNCLET_PID=
  [ -z "$(ls -A "$DATA/run/containers")" ] || fail "left in run/containers: $(ls -A "$DATA/run/containers")"
fi
echo "PASS: funclet_containers"
