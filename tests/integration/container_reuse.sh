#!/usr/bin/env bash
# Reuse of a container after container.reset, through a real pod with the controller's default
# cool-down (reset): function A's idle container is reset into funclet's cold pool, function B
# then runs in that same container (same funclet id, same runner process) with B's code, and
# finds nothing of A: not its /tmp files, not the background process it left, not the System V
# shared memory segment and message queue it left in the container's IPC namespace (which lives
# as long as the runner), not its code. A
# later invocation of A works (in the same container again, recycled a second time).
# funclet keeps at most one container (--max-containers 1), so its cold pool is short and takes
# the reset container back instead of topping up with a new one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
EF_FUNCLET_ARGS="--pool-size 1 --max-containers 1" \
  EF_CONTROLLER_ARGS="--idle-timeout 1s --health-interval 1s" pod_start
out=$EF_DATA/out

# Both functions report what they see of the container: /tmp, /var/task and its processes.
SEE='
import os


def processes():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    found.append(f.read().replace(b"\0", b" ").decode().strip())
            except OSError:
                pass
    return found


def ipc():
    found = []
    for kind in ("shm", "msg", "sem"):
        with open("/proc/sysvipc/" + kind) as f:
            found += ["%s %s" % (kind, line.split()[0]) for line in f.readlines()[1:]]
    return found


def seen(fn):
    return {"fn": fn, "tmp": sorted(os.listdir("/tmp")), "task": sorted(os.listdir("/var/task")),
            "processes": processes(), "ipc": ipc()}
'
mkdir -p "$EF_DATA/fn-a" "$EF_DATA/fn-b"
cat >"$EF_DATA/fn-a/a.py" <<PYEOF
$SEE
import ctypes
import subprocess

libc = ctypes.CDLL(None, use_errno=True)


def handler(event, context):
    before = seen("a")
    with open("/tmp/left-by-a", "w") as f:
        f.write("a was here")
    # A shared memory segment and a message queue under fixed keys (IPC_CREAT | 0600).
    if libc.shmget(0x45460001, 4096, 0o1600) < 0 or libc.msgget(0x45460002, 0o1600) < 0:
        raise OSError(ctypes.get_errno(), "shmget/msgget")
    # A background process in a session of its own, which outlives the invocation.
    subprocess.Popen(["/bin/sleep", "301.25"], start_new_session=True, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    return before
PYEOF
cat >"$EF_DATA/fn-b/b.py" <<PYEOF
$SEE


def handler(event, context):
    return seen("b")
PYEOF
chmod -R a+rX "$EF_DATA/fn-a" "$EF_DATA/fn-b"
[ "$(create_function reuse-a python3.11 a.handler "$EF_DATA/fn-a")" = 201 ] ||
  fail "create reuse-a: $(cat "$EF_DATA/create-reuse-a.json")"
[ "$(create_function reuse-b python3.12 b.handler "$EF_DATA/fn-b" ',"MemorySize":256')" = 201 ] ||
  fail "create reuse-b: $(cat "$EF_DATA/create-reuse-b.json")"

# cooled_into_pool ID: funclet lists the container as a cold spare.
cooled_into_pool() {
  [ "$(funclet_list | awk -v id="$1" '$1 == id { print $2, $3 }')" = "cold pooled" ]
}

note "function A runs and leaves a file in /tmp and a background process"
[ "$(invoke reuse-a '{}')" = 200 ] || fail "A: $(cat "$out")"
[ "$(json_get "$out" 'j["fn"], j["task"]')" = "('a', ['a.py'])" ] || fail "A's result: $(cat "$out")"
ID=$(pool_ids reuse-a)
[ -n "$ID" ] || fail "no container for A in GET /v1/runtimes"
RUNNER=$(funclet_pid "$ID")
[ -n "$RUNNER" ] || fail "funclet does not list A's container $ID"
pgrep -f '^/bin/sleep 301.25' >/dev/null || fail "A's background process is not running"

note "A's idle container is reset into funclet's cold pool (the default --cooldown)"
wait_for 15 "A's container to leave the controller's pool" pool_is reuse-a any 0
wait_for 10 "funclet to take container $ID back as a spare" cooled_into_pool "$ID"
grep -q "retiring container $ID of function reuse-a: idle for" "$EF_DATA/controller.log" ||
  fail "no log line for the cool-down"
grep -q "container $ID cooled down: back in funclet's cold pool" "$EF_DATA/controller.log" ||
  fail "the controller did not reset the container into the pool"
pgrep -f '^/bin/sleep 301.25' >/dev/null && fail "A's background process survived the reset"
[ "$(funclet_pid "$ID")" = "$RUNNER" ] || fail "the runner did not survive the reset"
# Once the reset is complete, the spare gets a Python runtime started ahead again, as a new one.
prestarted() { pgrep -P "$RUNNER" -f 'python/bootstrap' >/dev/null; }
wait_for 10 "the recycled spare's runner to start a Python runtime ahead" prestarted

note "function B runs in the same recycled container and sees nothing of A"
[ "$(invoke reuse-b '{}')" = 200 ] || fail "B: $(cat "$out")"
[ "$(pool_ids reuse-b)" = "$ID" ] || fail "B runs in $(pool_ids reuse-b), not in the recycled $ID"
[ "$(funclet_pid "$ID")" = "$RUNNER" ] || fail "B's container has another runner process"
[ "$(json_get "$out" 'j["fn"]')" = b ] || fail "B's answer is not B's: $(cat "$out")"
[ "$(json_get "$out" 'j["task"]')" = "['b.py']" ] || fail "B's /var/task: $(cat "$out")"
[ "$(json_get "$out" 'j["tmp"]')" = "[]" ] || fail "B sees A's /tmp: $(cat "$out")"
[ "$(json_get "$out" 'j["ipc"]')" = "[]" ] || fail "B sees A's IPC objects: $(cat "$out")"
[ "$(json_get "$out" '[p for p in j["processes"] if "sleep" in p]')" = "[]" ] ||
  fail "B sees A's background process: $(cat "$out")"
[ "$(json_get "$out" 'any("easyfaas-runner init" in p for p in j["processes"])')" = True ] ||
  fail "B does not see the runner as PID 1 of its container: $(cat "$out")"
grep -q "(started ahead) given for function reuse-b" "$EF_DATA/funclet.log" ||
  fail "B did not get the runtime started ahead in the recycled container"
[ "$(invoke reuse-b '{}')" = 200 ] && [ "$(pool_ids reuse-b)" = "$ID" ] ||
  fail "B's second call: $(cat "$out")"
[ "$(grep -c "container.*started for function reuse-b" "$EF_DATA/controller.log")" = 1 ] ||
  fail "B's second call was not warm"

note "A runs again, in the container recycled a second time"
wait_for 15 "B's container to leave the controller's pool" pool_is reuse-b any 0
wait_for 10 "funclet to take container $ID back again" cooled_into_pool "$ID"
[ "$(invoke reuse-a '{}')" = 200 ] || fail "A again: $(cat "$out")"
[ "$(pool_ids reuse-a)" = "$ID" ] || fail "A runs in $(pool_ids reuse-a), not in the recycled $ID"
[ "$(json_get "$out" 'j["fn"], j["task"], j["tmp"]')" = "('a', ['a.py'], [])" ] ||
  fail "A's second result: $(cat "$out")"
[ "$(json_get "$out" '[p for p in j["processes"] if "sleep" in p]')" = "[]" ] ||
  fail "A sees the background process of its first run: $(cat "$out")"
grep -E "ERROR" "$EF_DATA/controller.log" && fail "the controller logged errors"

pod_stop
assert_pod_gone "$RUNNER"
echo "PASS: container_reuse"
