#!/usr/bin/env bash
# The isolation of user code, asserted from inside a real container: funclet creates it, the
# runner starts a `provided` runtime whose bootstrap is tests/probe/ef-probe (a Runtime API
# client), and every invocation runs one probe as the user's code would. Needs root; exits 77
# (skipped) without it.
#
# EF_ISOLATION_USERNS=on (the default) runs every container in a user namespace and asserts its
# id mapping from both sides; EF_ISOLATION_USERNS=off runs the same suite without one.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/funclet_lib.sh"

require_root
require_built easyfaas-funclet easyfaas-runner ef-rpc-call ef-probe

DATA=$(mktemp -d /tmp/ef-iso.XXXXXX)
PARENT="ef-iso-$$"
SOCK="$DATA/run/funclet.sock"
FUNCLET_PID=
LISTENER=
PIDS_MAX=64
MEMORY_MB=64
USERNS=${EF_ISOLATION_USERNS:-on}
case "$USERNS" in on | off) ;; *) fail "EF_ISOLATION_USERNS must be on or off" ;; esac

cleanup() {
  local rc=$?
  [ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null || true
  kill_funclet
  [ $rc -eq 0 ] || show_funclet_log 40
  remove_cgroups "$PARENT"
  remove_data "$DATA"
  exit $rc
}
trap cleanup EXIT

call() { "$EF_BUILD_DIR/ef-rpc-call" --timeout 60000 "$SOCK" "$@"; }

# start_funclet [FLAGS...]
# funclet runs as an operator's service manager might start it: at nice -5, under a real-time
# policy, with real-time and nice limits raised (each where this test may: the limits need
# CAP_SYS_RESOURCE, the policy a real-time budget in this shell's cpu cgroup). Its containers
# must inherit none of them.
RAISED=(nice -n -5)
if chrt -f 1 true 2>/dev/null; then
  RAISED+=(chrt -f 1)
else
  note "no real-time budget here: funclet runs under this shell's scheduling policy"
fi
if prlimit --rtprio=99:99 --nice=40:40 true 2>/dev/null; then
  RAISED+=(prlimit --rtprio=99:99 --nice=40:40)
else
  note "no CAP_SYS_RESOURCE: funclet runs with this shell's RLIMIT_RTPRIO and RLIMIT_NICE, so" \
    "the rtprio and nice checks below hold with or without the limits funclet sets"
fi
start_funclet() {
  "${RAISED[@]}" "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" \
    --cgroup-parent "$PARENT" --tmp-size 16M --log-level debug --userns "$USERNS" \
    --userns-base "$EF_USERNS_BASE" "$@" 2>>"$DATA/funclet.log" &
  FUNCLET_PID=$!
  wait_funclet "$SOCK" "$DATA/funclet.log"
}

# new_container: creates a probe container and starts its runtime; sets ID, PID, RSOCK.
new_container() {
  local res
  res=$(call container.create "{\"code_dir\":\"$CODE\",\"memory_mb\":$MEMORY_MB,\"pids_max\":$PIDS_MAX}")
  ID=$(echo "$res" | json 'j["id"]')
  PID=$(echo "$res" | json 'j["pid"]')
  RSOCK=$(echo "$res" | json 'j["runner_socket"]')
  "$EF_BUILD_DIR/ef-rpc-call" --timeout 20000 "$RSOCK" runtime.start \
    "{\"function_name\":\"probe\",\"handler\":\"probe\",\"runtime\":\"provided.al2023\",\"memory_mb\":$MEMORY_MB,\"timeout_s\":60}" \
    >/dev/null || fail "runtime.start failed"
}

N=0
# probe EVENT: runs one probe in the container and prints its output.
probe() {
  N=$((N + 1))
  local params
  params=$(EVENT="$1" ID="r$N" /usr/bin/python3 -c 'import json,os,time
print(json.dumps({"request_id": os.environ["ID"], "payload": os.environ["EVENT"],
                  "deadline_ms": int(time.time() * 1000) + 60000}))')
  "$EF_BUILD_DIR/ef-rpc-call" --timeout 60000 "$RSOCK" invoke "$params" | json 'j["payload"]' ||
    fail "invoke '$1' failed"
}

# expect EVENT LINE: the probe's output must contain LINE as a whole line.
expect() {
  local out
  out=$(probe "$1")
  grep -qxF -- "$2" <<<"$out" || fail "probe '$1': expected line '$2', got: $out"
}

note "installing the runner and the probe, starting funclet"
"$EF_BUILD_DIR/easyfaas-runner" prepare --dest "$DATA/runtime" >/dev/null
CODE="$DATA/code/extracted/probe"
mkdir -p "$CODE"
install -m 0755 "$EF_BUILD_DIR/ef-probe" "$CODE/ef-probe"
printf '#!/bin/sh\nexec /var/task/ef-probe serve\n' >"$CODE/bootstrap"
chmod 0755 "$CODE/bootstrap"
start_funclet
new_container

note "pid namespace: PID 1 is the runner, host processes are invisible"
ps=$(probe ps)
grep -qx '1 easyfaas-runner' <<<"$ps" || fail "PID 1 is not the runner: $ps"
! grep -q 'funclet\|systemd\|sshd' <<<"$ps" || fail "host processes are visible: $ps"
[ "$(grep -c '^[0-9]' <<<"$ps")" -le 6 ] || fail "too many processes visible: $ps"

note "credentials: unprivileged, no capabilities, no_new_privs, seccomp (user namespace $USERNS)"
status=$(probe status)
grep -qP '^Uid:\t1001\t1001\t1001\t1001$' <<<"$status" || fail "uid: $status"
grep -qP '^Gid:\t1001\t1001\t1001\t1001$' <<<"$status" || fail "gid: $status"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
  grep -qP "^$cap:\t0000000000000000$" <<<"$status" || fail "$cap is not empty: $status"
done
grep -qP '^NoNewPrivs:\t1$' <<<"$status" || fail "no_new_privs is not set: $status"
grep -qP '^Seccomp:\t2$' <<<"$status" || fail "no seccomp filter: $status"

note "scheduling: the user's code inherits SCHED_BATCH from the runner (funclet's default)"
policy=$(probe 'cat /proc/self/stat' | sed -n 's/^[0-9]* (.*) //p' | awk '{ print $39 }')
[ "$policy" = 3 ] || fail "the function's scheduling policy is '$policy', want 3 (SCHED_BATCH)"

# host_ids PID: the first host uid of the user namespace of PID, from the host's side.
host_ids() { awk 'NR == 1 { print $2 }' "/proc/$1/uid_map"; }
# runtime_pid: the host pid of the runner's child, the runtime that runs the probes.
runtime_pid() { cat /proc/"$PID"/task/*/children | awk '{ print $1; exit }'; }
# host_uids PID: the real, effective, saved and fs uids of PID on the host.
host_uids() { awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$1/status"; }
inside_map=$(probe 'cat /proc/self/uid_map' | awk 'NF == 3 { print $1, $2, $3 }')
if [ "$USERNS" = on ]; then
  note "user namespace: a range of host ids of its own per container"
  [ "$inside_map" != "0 0 4294967295" ] || fail "the container has the host's identity map"
  BASE=$(host_ids "$PID")
  [ "$inside_map" = "0 $BASE 65536" ] || fail "uid_map inside: '$inside_map', host side base $BASE"
  [ "$(host_ids "$PID")" -ge "$EF_USERNS_BASE" ] || fail "range below --userns-base: $BASE"
  [ "$(awk '{ print $1, $2, $3 }' "/proc/$PID/gid_map")" = "0 $BASE 65536" ] ||
    fail "gid_map: $(cat "/proc/$PID/gid_map")"
  [ "$(host_uids "$PID")" = "$BASE $BASE $BASE $BASE" ] ||
    fail "the runner is not root of its namespace: host uids $(host_uids "$PID")"
  RT=$(runtime_pid)
  [ -n "$RT" ] || fail "the runner has no runtime process"
  fn=$((BASE + 1001))
  [ "$(host_uids "$RT")" = "$fn $fn $fn $fn" ] ||
    fail "the function's host uids are $(host_uids "$RT"), expected $fn (base $BASE + 1001)"
  [ "$(stat -c %u "/proc/$RT")" = "$fn" ] || fail "/proc/$RT is owned by $(stat -c %u "/proc/$RT")"
  # What the function writes belongs to its range on the host too (its /tmp is funclet's
  # tmpfs on the host side), and host root's files are nobody's inside.
  expect 'touch /tmp/owned' 'touch: OK'
  [ "$(stat -c %u:%g "$DATA/run/containers/$ID/mnt/tmp/owned")" = "$fn:$fn" ] ||
    fail "a file the function wrote is owned by $(stat -c %u:%g "$DATA/run/containers/$ID/mnt/tmp/owned") on the host"
  expect 'exec /usr/bin/stat -c %u:%g /usr/bin' '65534:65534'
  expect rlimits 'nproc=4096/4096'
  # The mounts funclet gives the container (its code, /tmp, /dev/shm) are locked: even root of
  # its user namespace with every capability there (nsenter, outside the seccomp filter) cannot
  # lift their nosuid and noexec.
  for m in /var/task /tmp /dev/shm; do
    if out=$(nsenter -t "$PID" -U -m mount -o remount,bind,suid,exec "$m" 2>&1); then
      fail "root of the user namespace could remount $m with suid,exec"
    fi
    grep -qi 'permission denied\|not permitted' <<<"$out" || fail "remount of $m: $out"
  done

  note "user namespace: two containers get disjoint ranges, reused after destroy"
  ID1=$ID PID1=$PID RSOCK1=$RSOCK
  new_container
  BASE2=$(host_ids "$PID")
  [ "$BASE2" -ge $((BASE + 65536)) ] || [ $((BASE2 + 65536)) -le "$BASE" ] ||
    fail "overlapping ranges: $BASE and $BASE2"
  RT2=$(runtime_pid)
  fn2=$((BASE2 + 1001))
  [ "$(host_uids "$RT2")" = "$fn2 $fn2 $fn2 $fn2" ] || fail "second function: $(host_uids "$RT2")"
  call container.destroy "{\"id\":\"$ID\"}" >/dev/null
  new_container
  call container.destroy "{\"id\":\"$ID\"}" >/dev/null
  ID=$ID1 PID=$PID1 RSOCK=$RSOCK1
  # Ranges are taken lowest first and given back at destroy: however many containers came and
  # went, the live ones (the pool tops itself up meanwhile) hold exactly the first slots.
  compact=
  for _ in $(seq 100); do
    kids=$(cat /proc/"$FUNCLET_PID"/task/*/children)
    bases=$(for c in $kids; do host_ids "$c" 2>/dev/null; done | sort -n)
    n=$(wc -l <<<"$bases")
    want=$(for k in $(seq 0 $((n - 1))); do echo $((EF_USERNS_BASE + k * 65536)); done)
    if [ "$bases" = "$want" ]; then compact=1 && break; fi
    sleep 0.05
  done
  [ -n "$compact" ] || fail "ranges of the live containers are not the first slots: $bases"
else
  note "no user namespace: the host's identity map"
  [ "$inside_map" = "0 0 4294967295" ] || fail "uid_map inside: '$inside_map'"
  RT=$(runtime_pid)
  [ "$(host_uids "$RT")" = "1001 1001 1001 1001" ] || fail "the function's host uids: $(host_uids "$RT")"
  # Unset: the runner's own limit, inherited from funclet (this shell's).
  soft=$(ulimit -Su) hard=$(ulimit -Hu)
  if [ "$soft" = unlimited ]; then
    expect rlimits 'nproc=unlimited'
  else
    expect rlimits "nproc=$soft/$hard"
  fi
fi

note "file system: read-only root and code, capped /tmp, no /sys"
expect 'write /x' 'open: EROFS'
expect 'write /var/task/x' 'open: EROFS'
expect 'write /usr/x' 'open: EROFS'
expect 'write /etc/passwd' 'open: EROFS'
expect 'write /tmp/small' 'write: OK'
expect 'write /tmp/big 32' 'write: ENOSPC'
expect 'ls /sys' 'opendir: ENOENT'

note "a minimal /dev: exactly the intended nodes, each the host's device"
# The set of funclet/mount_plan.c: the host's null, zero, full, random, urandom and tty when the
# host has them as character devices, a /dev/shm directory (empty in a new container) and the fd
# symbolic links; nothing else of the host's /dev (disks, /dev/mem, /dev/kmsg, ptys...).
want_dev=$(
  for d in null zero full random urandom tty; do
    [ -c "/dev/$d" ] || continue
    printf '/dev/%s c %d:%d\n' "$d" "0x$(stat -c %t "/dev/$d")" "0x$(stat -c %T "/dev/$d")"
  done
  printf '%s\n' '/dev/shm d' '/dev/fd l /proc/self/fd' '/dev/stdin l /proc/self/fd/0' \
    '/dev/stdout l /proc/self/fd/1' '/dev/stderr l /proc/self/fd/2'
)
for d in null zero full random urandom; do
  grep -q "^/dev/$d c " <<<"$want_dev" || fail "the host has no character device /dev/$d"
done
devs=$(probe devices)
grep -qx 'exit=0' <<<"$devs" || fail "probe devices: $devs"
got_dev=$(grep '^/dev' <<<"$devs" | sort)
[ "$got_dev" = "$(sort <<<"$want_dev")" ] ||
  fail "/dev in the container differs from the intended set: $(diff <(sort <<<"$want_dev") - <<<"$got_dev")"
# The nodes are the kernel's devices at work, and /dev takes nothing new.
devio=$(probe devio)
for line in 'read-zero: OK n=32 zero' 'read-full: OK n=32 zero' 'read-urandom: OK n=32' \
  'read-random: OK n=32' 'read-null: OK n=0' 'write-null: OK' 'write-full: ENOSPC' \
  'mknod: EPERM' 'create-in-dev: EROFS'; do
  grep -qxF -- "$line" <<<"$devio" || fail "probe devio: expected '$line', got: $devio"
done
dev_mount=$(probe 'cat /proc/self/mountinfo' | awk '$5 == "/dev" { print $6, $9 }')
[[ "$dev_mount" == ro,nosuid,noexec*" tmpfs" ]] || fail "/dev is not a read-only tmpfs: '$dev_mount'"

note "masked and read-only /proc paths"
[ ! -e /proc/kcore ] || expect 'cat /proc/kcore' 'bytes=0'
[ ! -e /proc/keys ] || expect 'cat /proc/keys' 'bytes=0'
[ ! -e /proc/timer_list ] || expect 'cat /proc/timer_list' 'bytes=0'
[ ! -e /proc/sched_debug ] || expect 'cat /proc/sched_debug' 'bytes=0'
[ ! -d /proc/acpi ] || expect 'ls /proc/acpi' 'entries=0'
[ ! -d /proc/scsi ] || expect 'ls /proc/scsi' 'entries=0'
mountinfo=$(probe 'cat /proc/self/mountinfo')
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
  /proc/timer_stats /proc/sched_debug /proc/scsi; do
  [ -e "$p" ] || continue
  awk -v p="$p" '$5 == p { found = 1 } END { exit !found }' <<<"$mountinfo" ||
    fail "$p is not masked: $mountinfo"
done
for p in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus /proc/fs; do
  [ -e "$p" ] || continue
  awk -v p="$p" '$5 == p && $6 ~ /^ro(,|$)/ { found = 1 } END { exit !found }' <<<"$mountinfo" ||
    fail "$p is not mounted read-only: $mountinfo"
done

note "system calls that must fail"
expect mount 'mount: EPERM'
expect 'umount /proc' 'umount: EPERM'
expect 'ptrace 1' 'ptrace: EPERM'
out=$(probe unshare)
for ns in user mount net; do
  grep -qx "unshare-$ns: EPERM" <<<"$out" || fail "unshare $ns: $out"
done
expect clone-ns 'clone-newuser: EPERM'
expect clone3 'clone3: ENOSYS'
expect setns 'setns: EPERM'
out=$(probe keyctl)
grep -qx 'keyctl: EPERM' <<<"$out" && grep -qx 'add_key: EPERM' <<<"$out" || fail "keyctl: $out"
expect bpf 'bpf: EPERM'
out=$(probe personality)
grep -qx 'personality-query: OK' <<<"$out" || fail "personality query: $out"
! grep -qx 'personality-bsd: OK' <<<"$out" || fail "a non-default personality was allowed: $out"

note "calls into the kernel itself (modules, kexec, reboot, swap, pivot_root) fail with EPERM"
# The probe's arguments are ones the kernel refuses even from a privileged caller, so nothing
# happens should a call get through. Stacked filters (funclet running under one of its own)
# answer with the most recent filter's errno, which is ours.
KERNEL_CALLS="kexec_load kexec_file_load init_module finit_module delete_module reboot swapon swapoff pivot_root"
kernel_filtered=$(probe kernel)
for call in $KERNEL_CALLS; do
  grep -qx "$call: EPERM" <<<"$kernel_filtered" || fail "$call: expected EPERM: $kernel_filtered"
done

note "network: only loopback"
[ "$(probe ifaces | grep '^iface ')" = "iface lo" ] || fail "interfaces: $(probe ifaces)"

note "control sockets are out of reach"
expect find-socket 'sockets=0'
expect "connect-unix $SOCK" 'connect: ENOENT'
expect "connect-unix $RSOCK" 'connect: ENOENT'
expect "ls $DATA" 'opendir: ENOENT'
expect 'ls /run' 'opendir: ENOENT'

note "rlimits and the cgroup namespace; no real-time policy, no negative nice"
expect rlimits 'nofile=1024/1024'
expect rlimits 'rtprio=0/0'
expect rlimits 'nice=0/0'
expect realtime 'nice=0 policy=3'
expect realtime 'sched-fifo: EPERM'
expect realtime 'sched-rr: EPERM'
expect realtime 'nice-minus-1: EACCES'
cg=$(probe 'cat /proc/self/cgroup')
! grep -E '^[0-9]+:[^:]*:/.+' <<<"$cg" || fail "the container sees host cgroup paths: $cg"
grep -qx '0::/' <<<"$cg" || fail "no cgroup namespace: $cg"

note "runtimes and tools work under the filter"
expect 'exec /usr/bin/python3 -c print(6*7)' '42'
expect 'exec /usr/bin/python3 -c t=__import__("threading").Thread(target=print,args=(7,));t.start();t.join()' '7'
expect 'exec /usr/bin/node -e console.log(6*7)' '42'
expect 'exec /usr/bin/node -e require("fs").readFile("/var/task/bootstrap",(e,d)=>console.log(e||d.length))' \
  "$(stat -c %s "$CODE/bootstrap")"
expect 'exec /bin/sh -c echo${IFS}shell' 'shell'
out=$(probe 'exec /usr/bin/curl -sS http://127.0.0.1:1/')
grep -q 'Failed to connect\|Couldn.t connect' <<<"$out" || fail "curl: $out"

note "a fork bomb stops at the pids limit"
out=$(probe forkbomb)
forks=$(sed -n 's/^forks=\([0-9]*\) error=.*/\1/p' <<<"$out")
grep -q 'error=EAGAIN' <<<"$out" || fail "fork bomb: $out"
[ "$forks" -gt 10 ] && [ "$forks" -lt "$PIDS_MAX" ] || fail "fork bomb made $forks processes: $out"
expect status 'Seccomp:	2'

note "memory over the limit is OOM-killed and reported"
"$EF_BUILD_DIR/ef-rpc-call" --timeout 30000 --notifications 1 "$SOCK" node.info >"$DATA/notes" &
LISTENER=$!
for _ in $(seq 100); do [ -s "$DATA/notes" ] && break; sleep 0.05; done
expect "memhog $((MEMORY_MB * 4))" 'signal=9'
wait "$LISTENER" || fail "no notification arrived"
LISTENER=
note=$(tail -n 1 "$DATA/notes")
[ "$(echo "$note" | json 'j["method"]')" = container.oom ] || fail "notification: $note"
[ "$(echo "$note" | json 'j["params"]["id"]')" = "$ID" ] || fail "notification: $note"
[ "$(call container.list | json "[c['oom_killed'] for c in j['containers'] if c['id'] == '$ID']")" = "[True]" ] ||
  fail "container.list does not say oom_killed: $(call container.list)"
expect status 'Seccomp:	2'

note "destroy leaves nothing"
call container.destroy "{\"id\":\"$ID\"}" >/dev/null
[ ! -e "/proc/$PID" ] || fail "runner $PID survived destroy"
[ -z "$(find /sys/fs/cgroup -type d -path "*/$PARENT/$ID" 2>/dev/null)" ] || fail "cgroups of $ID left"

note "the switches: --seccomp=false, --cgroup-ns=false, --rlimit-nofile, --rlimit-nproc"
stop_funclet
start_funclet --seccomp=false --cgroup-ns=false --rlimit-nofile 2048 --rlimit-nproc 500
new_container
expect status 'Seccomp:	0'
expect status 'CapEff:	0000000000000000'
expect mount 'mount: EPERM'
expect rlimits 'nofile=2048/2048'
# Without the filter the same calls get the kernel's own answers, those an unprivileged process
# gets on the host: the EPERM above came from the filter wherever they differ (swapon's unknown
# flags are EINVAL before any capability check, on a host that does not filter swapon itself).
kernel_host=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$EF_BUILD_DIR/ef-probe" kernel)
kernel_plain=$(probe kernel | grep -v '^exit=')
[ "$kernel_plain" = "$kernel_host" ] ||
  fail "without seccomp: $kernel_plain; an unprivileged process on the host: $kernel_host"
if [ "$kernel_host" != "$(grep -v '^exit=' <<<"$kernel_filtered")" ]; then
  note "the filter's answers differ from the kernel's: $(tr '\n' ' ' <<<"$kernel_host")"
else
  note "this host answers every probed call with EPERM itself: the filter cannot be told apart"
fi
expect rlimits 'nproc=500/500'
cg=$(probe 'cat /proc/self/cgroup')
grep -q "^[0-9]*:memory:/.*/$PARENT/$ID\$" <<<"$cg" ||
  fail "without a cgroup namespace the host path should show: $cg"
stop_funclet

if [ "$USERNS" = on ]; then
  # What funclet meets in a container runtime that masks /proc paths (podman, Docker): the kernel
  # refuses a new /proc in a user namespace while the visible one is partly covered.
  note "--userns where /proc is partly covered: on refuses to start, auto goes on without"
  masked=
  for p in /proc/kcore /proc/keys /proc/timer_list; do [ -f "$p" ] && masked=$p && break; done
  [ -n "$masked" ] || fail "no /proc file to cover"
  in_masked_ns() {
    exec unshare -m --propagation private sh -c 'mount --bind /dev/null "$0" && exec "$@"' \
      "$masked" "$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" \
      --pool-size 0 "$@"
  }
  if out=$(in_masked_ns --userns on 2>&1); then fail "--userns on started with $masked covered"; fi
  grep -q 'userns on: .*mount a new /proc: Operation not permitted' <<<"$out" ||
    fail "--userns on: unclear refusal: $out"
  : >"$DATA/funclet.log"
  in_masked_ns --log-level debug 2>>"$DATA/funclet.log" &
  FUNCLET_PID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
  [ -S "$SOCK" ] || fail "funclet with --userns auto did not start with $masked covered"
  [ "$(grep -c 'user namespaces do not work here' "$DATA/funclet.log")" = 1 ] ||
    fail "no single warning about the user namespace: $(cat "$DATA/funclet.log")"
  res=$(call container.create '{}')
  pid=$(echo "$res" | json 'j["pid"]')
  [ "$(awk '{ print $1, $2, $3 }' "/proc/$pid/uid_map")" = "0 0 4294967295" ] ||
    fail "auto without user namespaces: uid_map $(cat "/proc/$pid/uid_map")"
  call container.destroy "{\"id\":\"$(echo "$res" | json 'j["id"]')\"}" >/dev/null
  stop_funclet
fi

note "--userns and --userns-base refuse bad values"
for bad in "--userns maybe" "--userns-base 0" "--userns-base 4294000000 --userns on"; do
  # shellcheck disable=SC2086 # the flags are split on purpose
  if out=$("$EF_BUILD_DIR/easyfaas-funclet" --data-dir "$DATA" --cgroup-parent "$PARENT" $bad 2>&1); then
    fail "funclet started with $bad"
  fi
  grep -q 'userns' <<<"$out" || fail "$bad: unclear error: $out"
done

leftovers=$(find /sys/fs/cgroup -type d -name "$PARENT" 2>/dev/null || true)
[ -z "$leftovers" ] || fail "cgroups left behind: $leftovers"
! grep -q " $DATA" /proc/self/mountinfo || fail "mounts left behind"
[ -z "$(ls "$DATA/run/containers")" ] || fail "container directories left"
echo "PASS: isolation"
