#!/usr/bin/python3
"""A scripted Lambda Runtime API for runtime_python_client.sh: serves the events of a JSON file
to /next, records every post, and misbehaves on request so that the Python runtime's HTTP client
meets what a real server may do. Usage:

    runtime_python_fake_api.py EVENTS_JSON REPORT_JSON PORT_FILE MODE

EVENTS_JSON is a list of {"body": str, "headers": {name: value}}. MODE is one of
  keep        keep-alive, one response per write
  close_each  "Connection: close" on every response, then the connection is closed
  drop_post   the connection is closed without a word right after each 202
  bytewise    every response is written one byte at a time
  trickle     every response but its last 10 bytes, then those 20 ms later
  refuse_first  keep-alive, but the first post of an invocation's outcome is refused with 400
              (and not recorded), as the runner refuses a request it cannot parse
Once every event has been answered (or after an init error), REPORT_JSON gets
{"posts": [{"path", "headers", "body"}], "connections": n, "polls": n} and the server exits;
the runtime then sees its connection refused and ends."""
import json
import socket
import sys
import threading
import time

events_path, report_path, port_path, mode = sys.argv[1:5]
events = json.load(open(events_path))
lock = threading.Lock()
state = {"next": 0, "posts": [], "connections": 0, "polls": 0}
done = threading.Event()


def read_request(f):
    line = f.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("utf-8").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return method, path, headers, body


def send(conn, status, body, headers=None):
    reason = {200: "OK", 202: "Accepted"}.get(status, "Bad Request")
    head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status, reason, len(body))
    for name, value in (headers or {}).items():
        head += "%s: %s\r\n" % (name, value)
    if mode == "close_each":
        head += "Connection: close\r\n"
    data = (head + "\r\n").encode("utf-8") + body
    if mode == "bytewise":
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
    elif mode == "trickle":
        conn.sendall(data[:-10])
        time.sleep(0.02)
        conn.sendall(data[-10:])
    else:
        conn.sendall(data)


def finish():
    with open(report_path + ".tmp", "w") as f:
        json.dump({"posts": state["posts"], "connections": state["connections"],
                   "polls": state["polls"], "refused": state.get("refused", False)}, f)
    import os

    os.rename(report_path + ".tmp", report_path)
    done.set()


def serve(conn):
    f = conn.makefile("rb")
    try:
        while True:
            request = read_request(f)
            if request is None:
                return
            method, path, headers, body = request
            if method == "GET" and path.endswith("/invocation/next"):
                with lock:
                    state["polls"] += 1
                    i = state["next"]
                    state["next"] += 1
                if i >= len(events):
                    # Every event is out: this poll waits until the report is written.
                    done.wait()
                    return
                event = events[i]
                event_headers = {"Lambda-Runtime-Aws-Request-Id": "req-%d" % i,
                                 "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60000),
                                 "Lambda-Runtime-Invoked-Function-Arn":
                                     "arn:aws:lambda:us-east-1:000000000000:function:fake"}
                event_headers.update(event.get("headers", {}))
                send(conn, 200, event["body"].encode("utf-8"), event_headers)
            elif mode == "refuse_first" and "/invocation/" in path and not state.get("refused"):
                state["refused"] = True
                send(conn, 400, b'{"errorType":"InvalidRequest","errorMessage":"refused"}')
            else:
                with lock:
                    state["posts"].append({"path": path, "headers": headers,
                                           "body": body.decode("utf-8", "replace")})
                    answered = len([p for p in state["posts"] if "/invocation/" in p["path"]])
                    last = answered == len(events) or path.endswith("/init/error")
                send(conn, 202, b'{"status":"OK"}')
                if last:
                    finish()
                if mode == "drop_post":
                    time.sleep(0.05)
                    return
            if mode == "close_each":
                return
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
srv.settimeout(0.2)
with open(port_path + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os

os.rename(port_path + ".tmp", port_path)
deadline = time.monotonic() + 60
while not done.is_set() and time.monotonic() < deadline:
    try:
        c, _ = srv.accept()
    except socket.timeout:
        continue
    c.settimeout(None)
    with lock:
        state["connections"] += 1
    threading.Thread(target=serve, args=(c,), daemon=True).start()
srv.close()
sys.exit(0 if done.is_set() else 1)
