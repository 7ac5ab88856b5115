#!/usr/bin/python3
"""Offline check of Kubernetes manifests, for machines without a cluster to ask.

    validate.py FILE...

Checks the kinds these manifests use (Pod, Deployment, Service, PersistentVolumeClaim) against
the fields and types of the Kubernetes API (core/v1, apps/v1) the way the API server's strict
decoding and validation do: unknown or misspelled fields, wrong types, missing required fields,
malformed names, ports, quantities and probes, volume mounts naming no volume, a Deployment's
selector that does not select its own template, a Service's named targetPort that no selected
container declares. Only the subset of the API that describes a workload is known; a field
outside it is reported as unknown rather than accepted unchecked.
Exits 0 when every object is valid, 1 with one line per problem otherwise.
"""

import re
import sys

import yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
          "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "P": 1e15, "E": 1e18}


# ---- the schema: each type is a function (value, path, problems) -------------------------------

def _type_name(v):
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def string(v, path, out):
    if not isinstance(v, str):
        out.append(f"{path}: must be a string, not {_type_name(v)}")


def boolean(v, path, out):
    if not isinstance(v, bool):
        out.append(f"{path}: must be a boolean, not {_type_name(v)}")


def integer(lo=None, hi=None):
    def check(v, path, out):
        if isinstance(v, bool) or not isinstance(v, int):
            out.append(f"{path}: must be an integer, not {_type_name(v)}")
        elif lo is not None and v < lo:
            out.append(f"{path}: {v} is below {lo}" if hi is None else
                       f"{path}: {v} is outside {lo}..{hi}")
        elif hi is not None and v > hi:
            out.append(f"{path}: {v} is outside {lo}..{hi}")
    return check


def enum(*values):
    def check(v, path, out):
        if v not in values:
            out.append(f"{path}: {v!r} is not one of {', '.join(values)}")
    return check


def pattern(regex, what, max_len=None):
    def check(v, path, out):
        if not isinstance(v, str):
            out.append(f"{path}: must be a string, not {_type_name(v)}")
        elif not regex.match(v) or (max_len and len(v) > max_len):
            out.append(f"{path}: {v!r} is not a valid {what}")
    return check


def abs_path(v, path, out):
    if not isinstance(v, str) or not v.startswith("/"):
        out.append(f"{path}: must be an absolute path")


def quantity(v, path, out):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)) or not QUANTITY.match(str(v)):
        out.append(f"{path}: {v!r} is not a quantity (e.g. 250m, 64Mi, 1)")


def quantity_value(v):
    m = re.match(r"^([+-]?[0-9.]+)(.*)$", str(v))
    num, suffix = float(m.group(1)), m.group(2)
    if suffix[:1] in ("e", "E"):
        return num * 10 ** int(suffix[1:])
    return num * SUFFIX[suffix]


def int_or_string(v, path, out):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        out.append(f"{path}: must be an integer or a string, not {_type_name(v)}")
    elif isinstance(v, int) and not 1 <= v <= 65535:
        out.append(f"{path}: port {v} is outside 1..65535")
    elif isinstance(v, str) and not v.isdigit() and not (IANA_SVC_NAME.match(v) and len(v) <= 15):
        out.append(f"{path}: {v!r} is not a port name")


def array(item):
    def check(v, path, out):
        if not isinstance(v, list):
            out.append(f"{path}: must be an array, not {_type_name(v)}")
            return
        for i, x in enumerate(v):
            item(x, f"{path}[{i}]", out)
    return check


def string_map(key_check=None):
    def check(v, path, out):
        if not isinstance(v, dict):
            out.append(f"{path}: must be an object, not {_type_name(v)}")
            return
        for k, x in v.items():
            if key_check:
                key_check(k, f"{path}.{k}", out)
            if not isinstance(x, str):
                out.append(f"{path}.{k}: must be a string, not {_type_name(x)}")
    return check


def obj(fields, required=(), one_of=None):
    """An object with the given fields (name -> type); others are unknown. `one_of` lists
    fields of which exactly one must be set (a volume's source, a probe's handler)."""
    def check(v, path, out):
        if not isinstance(v, dict):
            out.append(f"{path}: must be an object, not {_type_name(v)}")
            return
        for k, x in v.items():
            if k not in fields:
                out.append(f"{path}.{k}: unknown field")
            else:
                fields[k](x, f"{path}.{k}", out)
        for k in required:
            if k not in v:
                out.append(f"{path}.{k}: required")
        if one_of is not None:
            present = [k for k in one_of if k in v]
            if len(present) != 1:
                out.append(f"{path}: needs exactly one of {', '.join(one_of)} "
                           f"(has {', '.join(present) or 'none'})")
    return check


def label_key(k, path, out):
    if not isinstance(k, str):
        out.append(f"{path}: label and annotation keys must be strings")
        return
    name = k.split("/")[-1]
    prefix = k[: -len(name) - 1] if "/" in k else ""
    if not LABEL_NAME.match(name) or len(name) > 63 or (prefix and not DNS_SUBDOMAIN.match(prefix)):
        out.append(f"{path}: {k!r} is not a valid label key")


def label_value(v, path, out):
    if not isinstance(v, str) or (v and (len(v) > 63 or not LABEL_NAME.match(v))):
        out.append(f"{path}: {v!r} is not a valid label value")


def labels(v, path, out):
    if not isinstance(v, dict):
        out.append(f"{path}: must be an object")
        return
    for k, x in v.items():
        label_key(k, f"{path}.{k}", out)
        label_value(x, f"{path}.{k}", out)


dns_label = pattern(DNS_LABEL, "DNS-1123 label", 63)
dns_subdomain = pattern(DNS_SUBDOMAIN, "DNS-1123 subdomain", 253)
port_number = integer(1, 65535)
port_name = pattern(IANA_SVC_NAME, "port name (IANA_SVC_NAME)", 15)
seconds = integer(0)
positive = integer(1)

metadata = obj({"name": dns_subdomain, "namespace": dns_label, "labels": labels,
                "annotations": string_map(label_key)}, required=("name",))
template_metadata = obj({"name": dns_subdomain, "labels": labels,
                         "annotations": string_map(label_key)})
def resource_list(v, path, out):
    if not isinstance(v, dict):
        out.append(f"{path}: must be an object, not {_type_name(v)}")
        return
    for name, q in v.items():
        if name not in ("cpu", "memory", "ephemeral-storage"):
            out.append(f"{path}.{name}: unknown resource")
        quantity(q, f"{path}.{name}", out)


resources = obj({"requests": resource_list, "limits": resource_list})
container_port = obj({"name": port_name, "containerPort": port_number, "hostPort": port_number,
                      "hostIP": string, "protocol": enum("TCP", "UDP", "SCTP")},
                     required=("containerPort",))
volume_mount = obj({"name": string, "mountPath": abs_path, "readOnly": boolean,
                    "subPath": string, "mountPropagation":
                    enum("None", "HostToContainer", "Bidirectional")},
                   required=("name", "mountPath"))
http_header = obj({"name": string, "value": string}, required=("name", "value"))
probe = obj({"exec": obj({"command": array(string)}, required=("command",)),
             "httpGet": obj({"path": string, "port": int_or_string, "host": string,
                             "scheme": enum("HTTP", "HTTPS"), "httpHeaders": array(http_header)},
                            required=("port",)),
             "tcpSocket": obj({"port": int_or_string, "host": string}, required=("port",)),
             "grpc": obj({"port": port_number, "service": string}, required=("port",)),
             "initialDelaySeconds": seconds, "periodSeconds": positive,
             "timeoutSeconds": positive, "successThreshold": positive,
             "failureThreshold": positive, "terminationGracePeriodSeconds": positive},
            one_of=("exec", "httpGet", "tcpSocket", "grpc"))
security_context = obj({
    "privileged": boolean, "runAsUser": integer(0), "runAsGroup": integer(0),
    "runAsNonRoot": boolean, "readOnlyRootFilesystem": boolean,
    "allowPrivilegeEscalation": boolean, "procMount": enum("Default", "Unmasked"),
    "capabilities": obj({"add": array(string), "drop": array(string)}),
    "seccompProfile": obj({"type": enum("RuntimeDefault", "Unconfined", "Localhost"),
                           "localhostProfile": string}, required=("type",)),
})
env_var = obj({"name": string, "value": string}, required=("name",))
container = obj({
    "name": dns_label, "image": string, "command": array(string), "args": array(string),
    "workingDir": abs_path, "ports": array(container_port), "env": array(env_var),
    "resources": resources, "volumeMounts": array(volume_mount),
    "livenessProbe": probe, "readinessProbe": probe, "startupProbe": probe,
    "imagePullPolicy": enum("Always", "IfNotPresent", "Never"),
    "securityContext": security_context, "stdin": boolean, "tty": boolean,
    "terminationMessagePolicy": enum("File", "FallbackToLogsOnError"),
}, required=("name", "image"))
volume = obj({
    "name": dns_label,
    "emptyDir": obj({"medium": enum("", "Memory"), "sizeLimit": quantity}),
    "persistentVolumeClaim": obj({"claimName": dns_subdomain, "readOnly": boolean},
                                 required=("claimName",)),
    "hostPath": obj({"path": abs_path, "type": enum(
        "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
        "BlockDevice")}, required=("path",)),
    "configMap": obj({"name": dns_subdomain, "defaultMode": integer(0, 0o777)}),
}, required=("name",), one_of=("emptyDir", "persistentVolumeClaim", "hostPath", "configMap"))
label_selector = obj({"matchLabels": labels})
affinity_term = obj({"topologyKey": string, "labelSelector": label_selector},
                    required=("topologyKey",))
affinity = obj({"podAntiAffinity": obj({
    "preferredDuringSchedulingIgnoredDuringExecution": array(obj(
        {"weight": integer(1, 100), "podAffinityTerm": affinity_term},
        required=("weight", "podAffinityTerm"))),
    "requiredDuringSchedulingIgnoredDuringExecution": array(affinity_term)})})
pod_spec = obj({
    "containers": array(container), "initContainers": array(container),
    "volumes": array(volume), "restartPolicy": enum("Always", "OnFailure", "Never"),
    "terminationGracePeriodSeconds": seconds, "hostNetwork": boolean, "hostPID": boolean,
    "nodeSelector": string_map(), "affinity": affinity, "serviceAccountName": dns_subdomain,
    "automountServiceAccountToken": boolean, "enableServiceLinks": boolean,
    "securityContext": obj({"runAsUser": integer(0), "runAsGroup": integer(0),
                            "fsGroup": integer(0), "runAsNonRoot": boolean}),
}, required=("containers",))
pod_template = obj({"metadata": template_metadata, "spec": pod_spec}, required=("spec",))


def int_or_percent(v, path, out):
    if isinstance(v, bool) or not (isinstance(v, int) and v >= 0 or
                                   isinstance(v, str) and re.match(r"^[0-9]+%$", v)):
        out.append(f"{path}: {v!r} must be a count or a percentage")


deployment_spec = obj({
    "replicas": integer(0), "selector": label_selector, "template": pod_template,
    "minReadySeconds": seconds, "revisionHistoryLimit": seconds,
    "progressDeadlineSeconds": positive,
    "strategy": obj({"type": enum("RollingUpdate", "Recreate"),
                     "rollingUpdate": obj({"maxUnavailable": int_or_percent,
                                           "maxSurge": int_or_percent})}),
}, required=("selector", "template"))
service_port = obj({"name": port_name, "port": port_number, "targetPort": int_or_string,
                    "nodePort": port_number, "protocol": enum("TCP", "UDP", "SCTP")},
                   required=("port",))
service_spec = obj({
    "type": enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "selector": labels, "ports": array(service_port), "clusterIP": string,
    "publishNotReadyAddresses": boolean, "sessionAffinity": enum("None", "ClientIP"),
    "internalTrafficPolicy": enum("Cluster", "Local"),
})
pvc_spec = obj({
    "accessModes": array(enum("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                              "ReadWriteOncePod")),
    "resources": obj({"requests": obj({"storage": quantity}, required=("storage",))},
                     required=("requests",)),
    "storageClassName": string, "volumeMode": enum("Filesystem", "Block"),
}, required=("accessModes", "resources"))

KINDS = {
    ("v1", "Pod"): pod_spec,
    ("apps/v1", "Deployment"): deployment_spec,
    ("v1", "Service"): service_spec,
    ("v1", "PersistentVolumeClaim"): pvc_spec,
}


# ---- rules that span fields -----------------------------------------------------------------

def _d(x):
    """x when it is an object, else an empty one: the schema has reported it already."""
    return x if isinstance(x, dict) else {}


def _l(x):
    """x when it is an array, else an empty one: the schema has reported it already."""
    return x if isinstance(x, list) else []


def _key(x):
    """x as a set member: names of the wrong type were reported by the schema."""
    return x if isinstance(x, (str, int)) and not isinstance(x, bool) else repr(x)


def check_resources(c, path, out):
    r = _d(c.get("resources"))
    req, lim = _d(r.get("requests")), _d(r.get("limits"))
    for name in sorted(set(req) & set(lim), key=str):
        try:
            if quantity_value(req[name]) > quantity_value(lim[name]):
                out.append(f"{path}.resources: {name} request {req[name]} exceeds its limit "
                           f"{lim[name]}")
        except (AttributeError, KeyError, ValueError, TypeError):
            pass  # a malformed quantity, already reported


def check_container(c, cpath, group, volumes, port_names, host_ports, out):
    check_resources(c, cpath, out)
    if isinstance(c.get("image"), str) and not c["image"].strip():
        out.append(f"{cpath}.image: must not be empty")
    mounts = set()
    for j, m in enumerate(_l(c.get("volumeMounts"))):
        m = _d(m)
        if "name" in m and _key(m["name"]) not in volumes:
            out.append(f"{cpath}.volumeMounts[{j}].name: no volume {m['name']!r}")
        if _key(m.get("mountPath")) in mounts:
            out.append(f"{cpath}.volumeMounts[{j}].mountPath: mounted twice")
        mounts.add(_key(m.get("mountPath")))
    own_ports = set()
    for j, p in enumerate(_l(c.get("ports"))):
        p = _d(p)
        if "name" in p:
            if _key(p["name"]) in port_names:
                out.append(f"{cpath}.ports[{j}].name: {p['name']!r} is used twice")
            port_names.add(_key(p["name"]))
            own_ports.add(_key(p["name"]))
        if "hostPort" in p:
            key = (_key(p.get("hostIP", "")), _key(p["hostPort"]), _key(p.get("protocol", "TCP")))
            if key in host_ports:
                out.append(f"{cpath}.ports[{j}].hostPort: used twice")
            host_ports.add(key)
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind not in c:
            continue
        pr = _d(c[kind])
        if group == "initContainers":
            out.append(f"{cpath}.{kind}: init containers may not have probes")
        if kind != "readinessProbe" and pr.get("successThreshold", 1) != 1:
            out.append(f"{cpath}.{kind}.successThreshold: must be 1")
        for h in ("httpGet", "tcpSocket"):
            port = _d(pr.get(h)).get("port")
            if isinstance(port, str) and not port.isdigit() and port not in own_ports:
                out.append(f"{cpath}.{kind}.{h}.port: the container has no port named {port!r}")


def check_pod(spec, path, out, in_template=False):
    """Cross-field rules of a PodSpec; returns the named ports of its containers."""
    spec = _d(spec)
    vols = [_key(_d(v).get("name")) for v in _l(spec.get("volumes"))]
    volumes = set(vols)
    if len(volumes) != len(vols):
        out.append(f"{path}.volumes: names must be unique")
    if in_template and spec.get("restartPolicy", "Always") != "Always":
        out.append(f"{path}.restartPolicy: a Deployment's pods must use Always")
    if not _l(spec.get("containers")):
        out.append(f"{path}.containers: at least one container is required")
    names, port_names, host_ports = set(), set(), set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(_l(spec.get(group))):
            c = _d(c)
            cpath = f"{path}.{group}[{i}]"
            if "name" in c:
                if _key(c["name"]) in names:
                    out.append(f"{cpath}.name: {c['name']!r} is used twice")
                names.add(_key(c["name"]))
            check_container(c, cpath, group, volumes, port_names, host_ports, out)
    return port_names


def selects(selector, labels_):
    return all(_d(labels_).get(k) == v for k, v in selector.items())


def check_object(doc, where, out, workloads, services):
    """Checks one object; records the pods' (labels, named ports) and the Services."""
    if not isinstance(doc, dict):
        out.append(f"{where}: a manifest must be an object")
        return
    api, kind = _key(doc.get("apiVersion")), _key(doc.get("kind"))
    schema = KINDS.get((api, kind))
    if schema is None:
        out.append(f"{where}: unknown apiVersion/kind {api}/{kind} (known: "
                   f"{', '.join(f'{a}/{k}' for a, k in KINDS)})")
        return
    path = f"{where} {kind} {_d(doc.get('metadata')).get('name', '?')}"
    for k in doc:
        if k not in ("apiVersion", "kind", "metadata", "spec"):
            out.append(f"{path}: unknown field {k!r}")
    metadata(doc.get("metadata"), f"{path}: metadata", out)
    if "spec" not in doc:
        out.append(f"{path}: spec: required")
        return
    schema(doc["spec"], f"{path}: spec", out)
    spec = _d(doc["spec"])
    if kind == "Pod":
        ports = check_pod(spec, f"{path}: spec", out)
        workloads.append((_d(_d(doc.get("metadata")).get("labels")), ports))
    elif kind == "Deployment":
        tmpl = _d(spec.get("template"))
        ports = check_pod(tmpl.get("spec"), f"{path}: spec.template.spec", out, in_template=True)
        tlabels = _d(_d(tmpl.get("metadata")).get("labels"))
        selector = _d(_d(spec.get("selector")).get("matchLabels"))
        if not selector:
            out.append(f"{path}: spec.selector.matchLabels: required")
        elif not selects(selector, tlabels):
            out.append(f"{path}: spec.selector does not match spec.template.metadata.labels")
        workloads.append((tlabels, ports))
    elif kind == "Service":
        ports = [_d(p) for p in _l(spec.get("ports"))]
        if spec.get("type", "ClusterIP") != "ExternalName" and not ports:
            out.append(f"{path}: spec.ports: at least one port is required")
        names = [_key(p.get("name")) for p in ports]
        if len(names) > 1 and ("None" in names or len(set(names)) != len(names)):
            out.append(f"{path}: spec.ports: several ports need distinct names")
        ip = spec.get("clusterIP")
        if isinstance(ip, str) and ip not in ("", "None") and not re.match(r"^[0-9a-fA-F.:]+$", ip):
            out.append(f"{path}: spec.clusterIP: must be an IP address or None")
        services.append((path, spec))


def validate(files):
    """Checks the objects of the given files together; returns the problems found."""
    out, named = [], []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                docs = list(yaml.safe_load_all(fh))
        except (OSError, yaml.YAMLError) as e:
            out.append(f"{f}: {e}")
            continue
        docs = [d for d in docs if d is not None]
        if not docs:
            out.append(f"{f}: no object")
        named += [(f"{f}#{i + 1}", d) for i, d in enumerate(docs)]
    return out + validate_objects(named)


def validate_objects(named):
    """Checks (where, object) pairs together; returns the problems found."""
    out, workloads, services = [], [], []
    for where, d in named:
        check_object(d, where, out, workloads, services)
    # Given with workloads, a Service must select some of their pods, and a named targetPort
    # must be a port those pods declare (else the Service has no endpoints).
    for path, spec in services if workloads else []:
        selector = _d(spec.get("selector"))
        if not selector:
            continue
        chosen = [ports for lbls, ports in workloads if selects(selector, lbls)]
        if not chosen:
            out.append(f"{path}: spec.selector selects no pod of these manifests")
            continue
        for i, p in enumerate(_l(spec.get("ports"))):
            tp = _d(p).get("targetPort")
            if isinstance(tp, str) and not tp.isdigit() and not all(tp in ps for ps in chosen):
                out.append(f"{path}: spec.ports[{i}].targetPort: no selected pod has a port "
                           f"named {tp!r}")
    return out


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    problems = validate(argv[1:])
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"validate: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"validate: {', '.join(argv[1:])}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
