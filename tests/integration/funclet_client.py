#!/usr/bin/python3
"""A small JSON-RPC client of funclet for the shell tests (docs/rpc.md: a 4-byte big-endian
length before each compact JSON message).

  funclet_client.py pipeline SOCKET REQUESTS_JSON
      Sends every request of the JSON array [[method, params], ...] in one write, before reading
      any answer, and prints each answer as one JSON line in the order they arrive. Requests on
      one container that overlap its asynchronous steps meet them this way deterministically.

  funclet_client.py cycles SOCKET N CODE_DIR [BRIDGE_EVERY]
      N cycles of container.create -> container.warmup -> container.reset -> container.destroy
      on one connection; every BRIDGE_EVERY-th cycle (0: never) warms up with network "bridge".
      Exits 1 at the first error, printing it; prints "cycles=N seconds=S" at the end.
"""
import json
import socket
import struct
import sys
import time

SHA = "0" * 64


def frame(req_id, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params},
                      separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("funclet closed the connection")
        buf += chunk
    return buf


def read_message(sock):
    (n,) = struct.unpack(">I", read_exact(sock, 4))
    return json.loads(read_exact(sock, n))


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


class Client:
    def __init__(self, path):
        self.sock = connect(path)
        self.next_id = 0

    def call(self, method, params):
        self.next_id += 1
        self.sock.sendall(frame(self.next_id, method, params))
        while True:
            msg = read_message(self.sock)
            if msg.get("id") == self.next_id:
                break  # notifications (no id) are skipped
        if "error" in msg:
            raise RuntimeError("%s %s: %s" % (method, json.dumps(params), msg["error"]))
        return msg["result"]


def pipeline(path, requests):
    sock = connect(path)
    data = b"".join(frame(i + 1, m, p) for i, (m, p) in enumerate(requests))
    sock.sendall(data)
    answered = 0
    while answered < len(requests):
        msg = read_message(sock)
        if "id" not in msg:
            continue
        print(json.dumps(msg, separators=(",", ":")), flush=True)
        answered += 1


def cycles(path, n, code_dir, bridge_every):
    client = Client(path)
    identity = {"name": "leak", "version": "1", "code_sha256": SHA, "config_hash": "h"}
    start = time.monotonic()
    for i in range(n):
        network = "bridge" if bridge_every and i % bridge_every == 0 else "none"
        cid = client.call("container.create", {})["id"]
        warm = client.call("container.warmup", {"id": cid, "code_dir": code_dir,
                                                "memory_mb": 128, "network": network,
                                                "identity": identity})
        if warm["state"] != "warm" or (network == "bridge") != ("address" in warm):
            raise RuntimeError("cycle %d: unexpected warmup answer %s" % (i, warm))
        reset = client.call("container.reset", {"id": cid})
        if reset.get("state") != "cold":
            raise RuntimeError("cycle %d: unexpected reset answer %s" % (i, reset))
        client.call("container.destroy", {"id": cid})
    print("cycles=%d seconds=%.1f" % (n, time.monotonic() - start))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "pipeline":
        pipeline(sys.argv[2], json.loads(sys.argv[3]))
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "cycles":
        bridge_every = int(sys.argv[5]) if len(sys.argv) == 6 else 0
        try:
            cycles(sys.argv[2], int(sys.argv[3]), sys.argv[4], bridge_every)
        except Exception as e:  # the shell test prints it and fails
            print("FAIL: %s" % e, file=sys.stderr)
            sys.exit(1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
