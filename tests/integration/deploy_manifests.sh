#!/usr/bin/env bash
# The deployment manifests are valid without a cluster: deploy/kubernetes/*.yaml pass the offline
# schema check (deploy/kubernetes/validate.py), which in turn rejects broken copies of them, and
# deploy/docker-compose.yml passes `docker-compose config`.
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml is not installed" >&2; exit 77; }
k8s=$EF_SOURCE_DIR/deploy/kubernetes
validate=$k8s/validate.py
tmp=$(mktemp -d /tmp/ef-manifests.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

manifests=("$k8s/pod.yaml" "$k8s/pvc.yaml" "$k8s/deployment.yaml" "$k8s/service.yaml")
/usr/bin/python3 "$validate" "${manifests[@]}" || fail "the shipped manifests are not valid"

# Where kubectl can reach a cluster, it checks them too (client-side dry run).
if command -v kubectl >/dev/null && kubectl version --request-timeout=3s >/dev/null 2>&1; then
  for m in "${manifests[@]}"; do
    kubectl create --dry-run=client -o yaml -f "$m" >/dev/null || fail "kubectl rejects $m"
  done
  note "kubectl accepts the manifests"
fi

# mutate NAME PYTHON EXPECTED: applies PYTHON to the documents `docs` (pod.yaml, pvc.yaml,
# deployment.yaml, service.yaml in one list) and expects the check to fail saying EXPECTED.
mutate() {
  local name=$1 code=$2 expected=$3 out
  /usr/bin/python3 - "$tmp/$name.yaml" "$code" "${manifests[@]}" <<'PY' || fail "mutation $name did not apply"
import sys, yaml
dst, code, files = sys.argv[1], sys.argv[2], sys.argv[3:]
docs = [d for f in files for d in yaml.safe_load_all(open(f)) if d]
pod = next(d for d in docs if d["kind"] == "Pod")
dep = next(d for d in docs if d["kind"] == "Deployment")
svc = next(d for d in docs if d["kind"] == "Service")
ctl = next(c for c in pod["spec"]["containers"] if c["name"] == "controller")
fcl = next(c for c in pod["spec"]["containers"] if c["name"] == "funclet")
exec(code)
yaml.safe_dump_all(docs, open(dst, "w"))
PY
  if out=$(/usr/bin/python3 "$validate" "$tmp/$name.yaml" 2>&1); then
    fail "the check accepted $name"
  fi
  grep -qF -- "$expected" <<<"$out" || fail "the check rejected $name, but not for '$expected': $out"
}

mutate misspelled 'ctl["readinesProbe"] = ctl.pop("readinessProbe")' "readinesProbe: unknown field"
mutate port_string 'ctl["ports"][0]["containerPort"] = "8080"' "containerPort: must be an integer"
mutate port_range 'ctl["ports"][0]["hostPort"] = 70000' "hostPort: 70000 is outside 1..65535"
mutate no_image 'del fcl["image"]' "image: required"
mutate bad_name 'pod["metadata"]["name"] = "EasyFaaS_Pod"' "is not a valid DNS-1123 subdomain"
mutate dangling_mount 'fcl["volumeMounts"][0]["name"] = "nowhere"' "no volume 'nowhere'"
mutate two_handlers 'ctl["livenessProbe"]["tcpSocket"] = {"port": 8080}' "needs exactly one of exec, httpGet"
mutate probe_port 'dep["spec"]["template"]["spec"]["containers"][1]["readinessProbe"]["httpGet"]["port"] = "web"' \
  "the container has no port named 'web'"
mutate over_limit 'fcl["resources"]["requests"]["memory"] = "8Gi"' "memory request 8Gi exceeds its limit 4Gi"
mutate bad_quantity 'fcl["resources"]["limits"]["cpu"] = "two"' "is not a quantity"
mutate selector 'dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "other"' \
  "spec.selector does not match spec.template.metadata.labels"
mutate restart 'dep["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"' "must use Always"
mutate target_port 'svc["spec"]["ports"][0]["targetPort"] = "api"' "no selected pod has a port named 'api'"
mutate no_pods 'svc["spec"]["selector"] = {"app": "nothing"}' "selects no pod of these manifests"
mutate duplicate 'pod["spec"]["containers"].append(dict(fcl))' "'funclet' is used twice"
mutate unknown_kind 'docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})' \
  "unknown apiVersion/kind v1/Secret"
note "the check rejects 16 kinds of broken manifest"

# Whatever a manifest holds, the check answers with problems, never a crash: every value of
# every shipped object replaced by values of other types, and an unknown (or non-string) key
# added to every object, which must always be reported.
/usr/bin/python3 -B - "$validate" "${manifests[@]}" <<'PY' || fail "the check crashed or accepted an unknown key"
import copy, importlib.util, sys, yaml
spec = importlib.util.spec_from_file_location("validate", sys.argv[1])
v = importlib.util.module_from_spec(spec)
spec.loader.exec_module(v)
docs = [d for f in sys.argv[2:] for d in yaml.safe_load_all(open(f)) if d]
named = lambda ds: [(f"doc{i}", d) for i, d in enumerate(ds)]
assert v.validate_objects(named(docs)) == []

def walk(x, p=()):
    yield p
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, y in items:
        yield from walk(y, p + (k,))

def at(root, p):
    for k in p:
        root = root[k]
    return root

n = 0
for di, d in enumerate(docs):
    for p in list(walk(d)):
        for junk in (None, 7, "x", [], {}, [1], {"a": 1}, True):
            ds = copy.deepcopy(docs)
            if p:
                at(ds[di], p[:-1])[p[-1]] = junk
            else:
                ds[di] = junk
            v.validate_objects(named(ds))
            n += 1
        if isinstance(at(d, p), dict):
            # Label maps take any string key; everywhere else the field names are fixed.
            free = p and p[-1] in ("labels", "matchLabels", "selector", "annotations", "nodeSelector")
            for key in (5, None) if free else ("unknownField", 5, None):
                ds = copy.deepcopy(docs)
                at(ds[di], p)[key] = "v"
                if not v.validate_objects(named(ds)):
                    sys.exit(f"key {key!r} added at {p} was accepted")
                n += 1
print(f"--- {n} mutated manifests checked without a crash", file=sys.stderr)
PY

if command -v docker-compose >/dev/null; then
  out=$(EF_PORT=18080 docker-compose -f "$EF_SOURCE_DIR/deploy/docker-compose.yml" config 2>&1) ||
    fail "docker-compose rejects deploy/docker-compose.yml: $out"
  grep -q '127.0.0.1:18080' <<<"$out" || grep -q 'published: 18080' <<<"$out" ||
    fail "EF_PORT does not set the published port: $out"
  note "docker-compose accepts deploy/docker-compose.yml"
else
  note "docker-compose is not installed; its file was not checked"
fi
echo PASS
