#!/usr/bin/env bash
# deploy/kubernetes/pod.yaml for real, with `podman kube play`: the init container fills the
# runtimes volume, funclet and controller come up, the controller answers on a loopback port of
# the host, functions are created and invoked with curl, the pod stops cleanly, `podman kube
# down` leaves nothing running, and a second play finds the functions on the claim's volume.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deploy_lib.sh"
deploy_require_tools
deploy_engine_setup

name=ef-test-$$
EF_PORT=$(free_port)
EF_BASE="http://127.0.0.1:$EF_PORT"
# shellcheck disable=SC2034 # where lib.sh's create_function keeps its answers
EF_DATA=$DEPLOY_TMP
manifest=$DEPLOY_TMP/pod.yaml
played=
cleanup() {
  local rc=$?
  # Best effort from here on: every step runs whatever the one before did.
  set +e
  if [ $rc -ne 0 ] && [ -n "$played" ]; then
    for c in funclet controller; do
      echo "=== $name-$c" >&2
      podman logs --tail 30 "$name-$c" >&2 2>&1 || true
    done
  fi
  [ -n "$played" ] && podman kube down "$manifest" >/dev/null 2>&1
  podman volume rm -f "$name-data" >/dev/null 2>&1
  rm -rf "$DEPLOY_TMP"
  exit $rc
}
trap cleanup EXIT

deploy_build_images

# The manifest as shipped, but with names, port and tag of the test's own, so that it cannot
# meet a developer's pod: the pod and its volumes get the test's name, the host port a free one.
/usr/bin/python3 - "$EF_SOURCE_DIR/deploy/kubernetes/pod.yaml" "$manifest" "$name" "$EF_PORT" \
  "$DEPLOY_TAG" <<'PY'
import sys, yaml
src, dst, name, port, tag = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
pods = [d for d in docs if d["kind"] == "Pod"]
assert len(pods) == 1, "pod.yaml must hold exactly one Pod"
pod = pods[0]
pod["metadata"]["name"] = name
spec = pod["spec"]
renamed = {}
for v in spec["volumes"]:
    renamed[v["name"]] = f"{name}-{v['name']}"
    v["name"] = renamed[v["name"]]
    if "persistentVolumeClaim" in v:
        v["persistentVolumeClaim"]["claimName"] = f"{name}-data"
host_ports = 0
for c in spec.get("initContainers", []) + spec["containers"]:
    image, _, _ = c["image"].rpartition(":")
    c["image"] = f"{image}:{tag}"
    for m in c.get("volumeMounts", []):
        m["name"] = renamed[m["name"]]
    for p in c.get("ports", []):
        if "hostPort" in p:
            assert p.get("hostIP") == "127.0.0.1", "the API must be published on loopback only"
            p["hostPort"] = int(port)
            host_ports += 1
assert host_ports == 1, "the controller must publish exactly one host port"
yaml.safe_dump(pod, open(dst, "w"), sort_keys=False)
PY

start=$SECONDS
note "podman kube play (pod $name, port $EF_PORT)"
played=1
podman kube play "$manifest" >"$DEPLOY_TMP/play.log" 2>&1 || { cat "$DEPLOY_TMP/play.log" >&2; fail "podman kube play failed"; }
wait_healthy "$EF_BASE" || fail "the controller never answered /healthz with funclet connected"
note "pod up in $((SECONDS - start)) s"

# The init container ran to completion before the others started.
init=$(grep -c -- "-runner-runtime$" <<<"$(podman ps -a --filter "pod=$name" --format '{{.Names}}')" || true)
grep -q 'runtime /var/lib/easyfaas/runtime' <<<"$(podman logs "$name-funclet" 2>&1)" ||
  fail "funclet did not start on the runtimes volume"
[ "$(podman inspect --format '{{.State.Status}}' "$name-funclet")" = running ] || fail "funclet is not running"
# podman removes an init container once it has run; when it is kept, it must have succeeded.
if [ "$init" -gt 0 ]; then
  [ "$(podman inspect --format '{{.State.ExitCode}}' "$name-runner-runtime")" = 0 ] ||
    fail "the runner-runtime init container failed"
fi
# The narrow security context took effect: the controller has no capability, funclet's root and
# the controller's are read-only.
[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name-controller")" = true ] ||
  fail "the controller's root is not read-only"
[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name-funclet")" = true ] ||
  fail "funclet's root is not read-only"
capeff=$(podman exec "$name-controller" awk '/^CapEff/ { print $2 }' /proc/1/status)
[ "$capeff" = 0000000000000000 ] || fail "the controller runs with capabilities $capeff"
# funclet claimed its containers' host id range in the node's /run/easyfaas (the hostPath
# volume), where the other funclets of this host see it.
! grep -q "host ids are not claimed" <<<"$(podman logs "$name-funclet" 2>&1)" ||
  fail "funclet could not claim its host ids: $(podman logs "$name-funclet" 2>&1 | grep 'not claimed')"
funclet_host_pid=$(podman inspect --format '{{.State.Pid}}' "$name-funclet")
lock_inode=$(stat -c %i /run/easyfaas/userns.lock)
awk -v pid="$funclet_host_pid" -v ino="$lock_inode" \
  '$2 == "POSIX" && $5 == pid && $6 ~ (":" ino "$") { found = 1 } END { exit !found }' /proc/locks ||
  fail "no lock of funclet (host pid $funclet_host_pid) on /run/easyfaas/userns.lock: $(cat /proc/locks)"

FUNCLET_CGROUP=$(funclet_cgroup "$name-funclet")
exercise_pod
pids=$(cgroup_pids "$FUNCLET_CGROUP")
[ -n "$pids" ] || fail "no process in funclet's cgroup"
note "functions created and invoked; user containers in $FUNCLET_CGROUP/easyfaas"

# Stop first, to read how the daemons ended, then down. The pod's cgroup (the parent of
# funclet's) must go with it.
podman pod stop -t 30 "$name" >/dev/null 2>&1 || fail "podman pod stop failed"
assert_stopped_cleanly "$name-funclet" "$name-controller"
assert_containers_destroyed "$name-funclet"
podman kube down "$manifest" >"$DEPLOY_TMP/down.log" 2>&1 || { cat "$DEPLOY_TMP/down.log" >&2; fail "podman kube down failed"; }
podman pod exists "$name" && fail "the pod is still there after kube down"
left=$(podman ps -a --format '{{.Names}}' | grep -- "^$name-" || true)
[ -z "$left" ] || fail "containers left after kube down: $left"
left=$(podman volume ls --format '{{.Name}}' | grep -- "^$name-" | grep -v -- "^$name-data$" || true)
[ -z "$left" ] || fail "emptyDir volumes left after kube down: $left"
assert_nothing_left "$EF_PORT" "$(dirname "$FUNCLET_CGROUP")" $pids
note "kube down left nothing running"

# Played again, the pod finds its functions on the claim's volume.
podman kube play "$manifest" >"$DEPLOY_TMP/play.log" 2>&1 || { cat "$DEPLOY_TMP/play.log" >&2; fail "second podman kube play failed"; }
wait_healthy "$EF_BASE" || fail "the controller did not come back"
out=$(invoke adder '{"a": 20, "b": 22}')
[ "$out" = '{"sum": 42}' ] || fail "after down/play, adder answered: $out"
FUNCLET_CGROUP=$(funclet_cgroup "$name-funclet")
podman kube down "$manifest" >/dev/null 2>&1 || fail "second podman kube down failed"
played=
podman volume rm "$name-data" >/dev/null || fail "cannot remove the data volume"
assert_nothing_left "$EF_PORT" "$(dirname "$FUNCLET_CGROUP")"
note "functions kept across kube down/play; all removed"
echo PASS
