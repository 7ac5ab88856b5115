#!/usr/bin/env bash
# deploy/docker-compose.yml for real: the three images built with podman, docker-compose (v1)
# against `podman system service` on a private socket, functions created and invoked with curl
# from the host, `down` leaving nothing running, `up` again keeping the functions, and a final
# `down -v` removing the volumes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/deploy_lib.sh"
deploy_require_tools
deploy_engine_setup

project=ef-test-$$
EF_PORT=$(free_port)
EF_BASE="http://127.0.0.1:$EF_PORT"
# shellcheck disable=SC2034 # where lib.sh's create_function keeps its answers
EF_DATA=$DEPLOY_TMP
service_pid=
compose() {
  EF_PORT=$EF_PORT EF_TAG=$DEPLOY_TAG docker-compose --ansi never -p "$project" \
    -f "$EF_SOURCE_DIR/deploy/docker-compose.yml" "$@"
}
cleanup() {
  local rc=$?
  # Best effort from here on: every step runs whatever the one before did.
  set +e
  if [ $rc -ne 0 ] && [ -n "$service_pid" ]; then
    compose logs --no-color --tail 40 >&2 2>/dev/null || true
  fi
  if [ -n "$service_pid" ]; then
    compose down -v -t 10 >/dev/null 2>&1
    kill -TERM "$service_pid" 2>/dev/null
    wait "$service_pid" 2>/dev/null
  fi
  [ $rc -ne 0 ] && [ -f "$DEPLOY_TMP/service.log" ] && tail -n 20 "$DEPLOY_TMP/service.log" >&2
  rm -rf "$DEPLOY_TMP"
  exit $rc
}
trap cleanup EXIT

deploy_build_images

# The Docker API, served by podman on a socket of the test's own.
export DOCKER_HOST=unix://$DEPLOY_TMP/podman.sock
podman system service --time 0 "$DOCKER_HOST" >"$DEPLOY_TMP/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
  [ -S "$DEPLOY_TMP/podman.sock" ] && break
  kill -0 "$service_pid" 2>/dev/null || fail "podman system service died: $(cat "$DEPLOY_TMP/service.log")"
  sleep 0.1
done
[ -S "$DEPLOY_TMP/podman.sock" ] || fail "the podman API socket did not appear"

start=$SECONDS
note "docker-compose up -d (project $project, port $EF_PORT)"
compose up -d >"$DEPLOY_TMP/up.log" 2>&1 || { cat "$DEPLOY_TMP/up.log" >&2; fail "docker-compose up failed"; }
wait_healthy "$EF_BASE" || fail "the controller never answered /healthz with funclet connected"
note "pod up in $((SECONDS - start)) s"

funclet=${project}_funclet_1
controller=${project}_controller_1
runner=${project}_runner-runtime_1
[ "$(podman inspect --format '{{.State.ExitCode}} {{.State.Status}}' "$runner")" = "0 exited" ] ||
  fail "runner-runtime did not complete"
grep -q 'installed /var/lib/easyfaas/runtime/bin/easyfaas-runner' <<<"$(podman logs "$runner" 2>&1)" ||
  fail "runner-runtime did not install the runner"
FUNCLET_CGROUP=$(funclet_cgroup "$funclet")

exercise_pod
pids=$(cgroup_pids "$FUNCLET_CGROUP")
[ -n "$pids" ] || fail "no process in funclet's cgroup"
note "functions created and invoked; user containers in $FUNCLET_CGROUP/easyfaas"

# stop first, to read how the daemons ended, then down.
compose stop -t 30 >/dev/null 2>&1 || fail "docker-compose stop failed"
assert_stopped_cleanly "$funclet" "$controller"
assert_containers_destroyed "$funclet"
compose down >/dev/null 2>&1 || fail "docker-compose down failed"
left=$(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')
[ -z "$left" ] || fail "containers left after down: $left"
assert_nothing_left "$EF_PORT" "$FUNCLET_CGROUP" $pids
podman volume exists "${project}_data" || fail "down removed the data volume"
note "down left nothing running"

# up again: the functions are still there.
compose up -d >"$DEPLOY_TMP/up.log" 2>&1 || { cat "$DEPLOY_TMP/up.log" >&2; fail "second docker-compose up failed"; }
wait_healthy "$EF_BASE" || fail "the controller did not come back"
out=$(invoke adder '{"a": 20, "b": 22}')
[ "$out" = '{"sum": 42}' ] || fail "after down/up, adder answered: $out"
FUNCLET_CGROUP=$(funclet_cgroup "$funclet")
note "functions kept across down/up"

compose down -v -t 30 >/dev/null 2>&1 || fail "docker-compose down -v failed"
left=$(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')
[ -z "$left" ] || fail "containers left after down -v: $left"
left=$(podman volume ls --format '{{.Name}}' | grep "^${project}_" || true)
[ -z "$left" ] || fail "volumes left after down -v: $left"
assert_nothing_left "$EF_PORT" "$FUNCLET_CGROUP"
note "down -v removed the volumes"
echo PASS
