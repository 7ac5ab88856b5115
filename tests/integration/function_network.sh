#!/usr/bin/env bash
# A function's NetworkMode through a real pod: a handler reports the interfaces, addresses and
# default route it sees (from /proc) and whether it reaches the controller's port on 127.0.0.1.
# none (the default): only lo, the controller unreachable; bridge: eth0 with an address of
# funclet's bridge CIDR and a default route via the bridge, the controller unreachable; host:
# refused unless the controller runs with --allow-host-network, and then the handler sees the
# pod's own interfaces and reaches the controller. UpdateFunctionConfiguration from none to
# bridge makes the next call run in a new container with eth0. funclet's bridge and veths are
# gone once the pod has stopped.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
require_built easyfaas-controller easyfaas-funclet easyfaas-runner

NETINFO=$EF_SOURCE_DIR/tests/integration/functions/netinfo
# A bridge and network of this test's own, so that it never meets another pod's.
BRIDGE="efn$$"
NET3=$(($$ % 250))
CIDR_PREFIX="100.66.$NET3"
EF_FUNCLET_ARGS="--bridge-name $BRIDGE --bridge-cidr $CIDR_PREFIX.0/24"
pod_start

# netinfo NAME WHAT: invokes NAME and checks its answer `a` against a Python expression.
netinfo() {
  local name=$1 expr=$2 what=$3
  [ "$(invoke "$name" "{\"port\": $EF_PORT}")" = 200 ] || fail "invoke $name: $(cat "$EF_DATA/out")"
  /usr/bin/python3 -c 'import json, sys; a = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$EF_DATA/out" "$expr" || fail "$what: $(cat "$EF_DATA/out")"
}

# runtimes_of NAME: the /v1/runtimes entries of function NAME, as a JSON array.
runtimes_of() {
  curl -fsS "$EF_BASE/v1/runtimes" |
    /usr/bin/python3 -c 'import json, sys; print(json.dumps([c for c in json.load(sys.stdin) if c["function"] == sys.argv[1]]))' "$1"
}

# remember_bridged NAME: adds the ids of NAME's bridged containers to BRIDGED (their host-side
# veth is ve<the id without its c>).
BRIDGED=()
remember_bridged() {
  local id
  for id in $(runtimes_of "$1" | /usr/bin/python3 -c 'import json, sys; print(" ".join(c["id"] for c in json.load(sys.stdin) if c["network"] == "bridge"))'); do
    BRIDGED+=("$id")
    ip link show "ve${id#c}" >/dev/null 2>&1 || fail "container $id has no veth ve${id#c}"
  done
}

# update_config NAME JSON: UpdateFunctionConfiguration; prints the HTTP status.
update_config() {
  curl -sS -o "$EF_DATA/update.json" -w '%{http_code}' -X PUT \
    "$EF_BASE/2015-03-31/functions/$1/configuration" -d "$2"
}

note "none (the default): only loopback, the controller's port out of reach"
[ "$(create_function plain python3.11 app.handler "$NETINFO")" = 201 ] ||
  fail "create plain: $(cat "$EF_DATA/create-plain.json")"
[ "$(json_get "$EF_DATA/create-plain.json" 'j["NetworkMode"]')" = none ] ||
  fail "CreateFunction's answer lacks NetworkMode none: $(cat "$EF_DATA/create-plain.json")"
netinfo plain 'a["interfaces"] == ["lo"] and a["addresses"] == ["127.0.0.1"]' "none sees more than lo"
netinfo plain 'a["default_route"] is None and not a["controller_reachable"]' "none reaches out"
first=$(runtimes_of plain)
/usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if len(r) == 1 and r[0]["network"] == "none" else 1)' \
  "$first" || fail "GET /v1/runtimes: $first"

note "validation: an unknown mode, and host without --allow-host-network, are refused"
[ "$(create_function bad python3.11 app.handler "$NETINFO" ',"NetworkMode":"nat"')" = 400 ] ||
  fail "NetworkMode nat accepted: $(cat "$EF_DATA/create-bad.json")"
grep -q 'networkMode' "$EF_DATA/create-bad.json" || fail "the error does not name the member: $(cat "$EF_DATA/create-bad.json")"
[ "$(create_function hosted python3.11 app.handler "$NETINFO" ',"NetworkMode":"host"')" = 400 ] ||
  fail "NetworkMode host accepted without the flag: $(cat "$EF_DATA/create-hosted.json")"
# (test_controller_manage checks its x-amzn-ErrorType, InvalidParameterValueException.)
grep -q -- '--allow-host-network' "$EF_DATA/create-hosted.json" ||
  fail "the error does not name the flag: $(cat "$EF_DATA/create-hosted.json")"
[ "$(update_config plain '{"NetworkMode":"host"}')" = 400 ] || fail "update to host accepted: $(cat "$EF_DATA/update.json")"

note "bridge: eth0 with an address of $CIDR_PREFIX.0/24 and a default route via the bridge"
[ "$(create_function br python3.11 app.handler "$NETINFO" ',"NetworkMode":"bridge"')" = 201 ] ||
  fail "create br: $(cat "$EF_DATA/create-br.json")"
[ "$(json_get "$EF_DATA/create-br.json" 'j["NetworkMode"]')" = bridge ] || fail "create br: $(cat "$EF_DATA/create-br.json")"
netinfo br 'sorted(a["interfaces"]) == ["eth0", "lo"]' "bridge interfaces"
netinfo br "[x for x in a['addresses'] if x != '127.0.0.1'] and all(x.startswith('$CIDR_PREFIX.') and x != '$CIDR_PREFIX.1' for x in a['addresses'] if x != '127.0.0.1')" \
  "bridge address outside $CIDR_PREFIX.0/24"
netinfo br "a['default_route'] == {'interface': 'eth0', 'gateway': '$CIDR_PREFIX.1'}" "bridge default route"
netinfo br 'not a["controller_reachable"]' "a bridged function reached the controller on its loopback"
addr=$(json_get "$EF_DATA/out" '[x for x in j["addresses"] if x != "127.0.0.1"][0]')
ip link show "$BRIDGE" >/dev/null || fail "funclet made no bridge $BRIDGE"
r=$(runtimes_of br)
/usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if len(r) == 1 and r[0]["network"] == "bridge" and r[0]["address"].split("/")[0] == sys.argv[2] else 1)' \
  "$r" "$addr" || fail "GET /v1/runtimes does not show the bridge address $addr: $r"
remember_bridged br

note "UpdateFunctionConfiguration none → bridge: the next call runs in a new container with eth0"
[ "$(update_config plain '{"NetworkMode":"bridge"}')" = 200 ] || fail "update: $(cat "$EF_DATA/update.json")"
[ "$(json_get "$EF_DATA/update.json" 'j["NetworkMode"]')" = bridge ] || fail "update: $(cat "$EF_DATA/update.json")"
netinfo plain '"eth0" in a["interfaces"] and not a["controller_reachable"]' "the updated function still has no eth0"
old_id=$(/usr/bin/python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0]["id"])' "$first")
now=$(runtimes_of plain)
/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if any(c["network"] == "bridge" and c["id"] != sys.argv[2] for c in r) else 1)' \
  "$now" "$old_id" || fail "no new bridge container after the update: $now"
remember_bridged plain
note "and back to none: only lo again"
[ "$(update_config plain '{"NetworkMode":"none"}')" = 200 ] || fail "update: $(cat "$EF_DATA/update.json")"
netinfo plain 'a["interfaces"] == ["lo"]' "back to none"

note "host, with --allow-host-network: the pod's interfaces, the controller in reach"
controller_restart --allow-host-network
[ "$(create_function hosted python3.11 app.handler "$NETINFO" ',"NetworkMode":"host"')" = 201 ] ||
  fail "create hosted with the flag: $(cat "$EF_DATA/create-hosted.json")"
[ "$(json_get "$EF_DATA/create-hosted.json" 'j["NetworkMode"]')" = host ] || fail "create hosted: $(cat "$EF_DATA/create-hosted.json")"
mine=$(/usr/bin/python3 -c '
with open("/proc/net/dev") as f:
    print(" ".join(sorted(l.split(":", 1)[0].strip() for l in f.read().splitlines()[2:] if ":" in l)))')
netinfo hosted "' '.join(a['interfaces']) == '$mine'" "host does not show the pod's interfaces ($mine)"
netinfo hosted 'a["controller_reachable"]' "a host-network function cannot reach the controller"
netinfo br '"eth0" in a["interfaces"] and not a["controller_reachable"]' "bridge after the restart"

note "without the flag again, the stored host function is not started"
controller_restart
[ "$(invoke hosted "{\"port\": $EF_PORT}")" = 500 ] || fail "a host function ran without the flag: $(cat "$EF_DATA/out")"
grep -q -- '--allow-host-network' "$EF_DATA/out" || fail "the refusal does not name the flag: $(cat "$EF_DATA/out")"
netinfo plain 'a["interfaces"] == ["lo"]' "none after the restart"

note "stop the pod: funclet's bridge and veths go with it"
pods=("$FUNCLET_PID" "$CONTROLLER_PID")
pod_stop
assert_pod_gone "${pods[@]}"
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "bridge $BRIDGE left behind"
for id in "${BRIDGED[@]}"; do
  ip link show "ve${id#c}" >/dev/null 2>&1 && fail "veth ve${id#c} of container $id left behind"
done
echo "PASS"
