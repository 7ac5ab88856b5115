# Reports the network the function sees, from /proc alone (/sys is not mounted in containers):
# its interfaces (/proc/net/dev), its local IPv4 addresses (/proc/net/fib_trie), its default
# route (/proc/net/route), and whether it can open a TCP connection to 127.0.0.1:<event port>.
import socket
import struct


def interfaces():
    with open("/proc/net/dev") as f:
        lines = f.read().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def addresses():
    # In fib_trie a local address is a "|-- a.b.c.d" line followed by "/32 host LOCAL".
    found, last = set(), None
    with open("/proc/net/fib_trie") as f:
        for line in f:
            text = line.strip()
            if text.startswith("|--"):
                last = text[3:].strip()
            elif "/32 host LOCAL" in text and last:
                found.add(last)
    return sorted(found)


def default_route():
    with open("/proc/net/route") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
                return {"interface": fields[0], "gateway": gateway}
    return None


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def handler(event, context):
    return {
        "interfaces": interfaces(),
        "addresses": addresses(),
        "default_route": default_route(),
        "controller_reachable": can_connect(int(event["port"])),
        "hostname": socket.gethostname(),
    }
