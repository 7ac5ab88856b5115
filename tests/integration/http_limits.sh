#!/usr/bin/env bash
# Body limits per route, through a real pod: the controller decides a request's limit from its
# request line and headers and refuses a larger Content-Length before reading the body
# (api_limits.h, docs/api.md "Limits"). A 10 MiB Invoke gets 413 RequestTooLargeException at
# once, with only its headers sent; a 10 MiB CreateFunction and UpdateFunctionCode are still
# accepted, and the function they made answers a 1 MiB invocation (above the 1 MiB limit of the
# other routes, below Invoke's 6 MiB).
source "$(dirname "$0")/lib.sh"
require_root
require_built easyfaas-controller easyfaas-funclet easyfaas-runner

pod_start
tmp=$EF_DATA/http-limits
mkdir -p "$tmp"
MiB=$((1024 * 1024))

# Raw-socket checks: only the head of each request is sent (or a chunked body is cut short), so
# an answer proves the server did not wait for the body.
note "413 from the headers alone"
/usr/bin/python3 - "$EF_PORT" <<'EOF' || fail "raw-socket checks"
import json, socket, sys, time

port = int(sys.argv[1])


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response: %r" % data)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n].decode()


def head_only(method, path, length, extra=""):
    """Sends a request head declaring `length` bytes and none of them; returns the answer and
    how long it took."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    t0 = time.monotonic()
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
               "Content-Length: %d\r\n\r\n" % (method, path, extra, length)).encode())
    status, headers, body = read_response(s)
    took = time.monotonic() - t0
    # The connection is closed after a 413: the body will not be read.
    s.settimeout(3)
    assert s.recv(1) == b"", "connection still open after 413"
    s.close()
    return status, headers, body, took


def expect_413(method, path, length, words, extra=""):
    status, headers, body, took = head_only(method, path, length, extra)
    assert status == 413, (method, path, status, body)
    assert headers.get("x-amzn-errortype") == "RequestTooLargeException", headers
    msg = json.loads(body)["message"]
    assert words in msg, (path, msg)
    assert took < 2, (path, took)
    print("ok %s %s %d: %s (%.3f s)" % (method, path, length, msg, took), file=sys.stderr)


inv = "/2015-03-31/functions/big/invocations"
words = "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
expect_413("POST", inv, 10 * 1024 * 1024, words)
expect_413("POST", "/v1/functions/big/invocations", 10 * 1024 * 1024, words)
expect_413("POST", inv + "?Qualifier=1", 6291457, words)
expect_413("POST", inv, 300000,
           "Request must be smaller than 262144 bytes for the InvokeFunction operation "
           "with InvocationType Event (this one has 300000)",
           "X-Amz-Invocation-Type: Event\r\n")
# Every other route has 1 MiB, whatever the method or path.
small = "request body is larger than the limit of 1048576 bytes"
expect_413("GET", "/healthz", 10 * 1024 * 1024, small)
expect_413("PUT", "/no/such/route", 1048577, small)
expect_413("PUT", "/2015-03-31/functions/big/configuration", 2 * 1024 * 1024, small)
expect_413("GET", "/2015-03-31/functions/big/invocations", 2 * 1024 * 1024, small)
# The code routes keep --max-code-request-size (70 MiB).
expect_413("POST", "/2015-03-31/functions", 70 * 1024 * 1024 + 1,
           "Request must be smaller than 73400320 bytes for the CreateFunction operation")
expect_413("PUT", "/2015-03-31/functions/big/code", 70 * 1024 * 1024 + 1,
           "for the UpdateFunctionCode operation")

# A chunked invocation is refused once it passes 6 MiB, before it ends.
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
s.sendall(b"POST " + inv.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
sent = 0
try:
    for _ in range(7 * 16):  # 7 MiB, no last chunk
        s.sendall(chunk)
        sent += 65536
except (BrokenPipeError, ConnectionResetError):
    pass
status, headers, body = read_response(s)
assert status == 413 and words in body, (status, body)
print("ok chunked invocation refused after %d bytes sent" % sent, file=sys.stderr)
s.close()
EOF

# curl sends Expect: 100-continue with a large body; the 413 comes instead of the 100.
note "curl: a 10 MiB Invoke"
head -c $((10 * MiB)) /dev/zero | tr '\0' ' ' >"$tmp/10m.json"
start=$(date +%s%N)
code=$(curl -sS -o "$tmp/out.json" -D "$tmp/out.h" -w '%{http_code}' -X POST \
  "$EF_BASE/2015-03-31/functions/big/invocations" --data-binary @"$tmp/10m.json")
ms=$((($(date +%s%N) - start) / 1000000))
[ "$code" = 413 ] || fail "10 MiB invoke gave $code: $(cat "$tmp/out.json")"
grep -qi '^x-amzn-errortype: RequestTooLargeException' "$tmp/out.h" || fail "no RequestTooLargeException"
grep -q 'smaller than 6291456 bytes for the InvokeFunction operation' "$tmp/out.json" ||
  fail "413 message: $(cat "$tmp/out.json")"
[ "$ms" -lt 2000 ] || fail "the 413 took $ms ms"

# A 10 MiB CreateFunction: api_echo's handler and 7.5 MiB of incompressible filler, which base64
# makes 10 MiB.
note "a 10 MiB CreateFunction and UpdateFunctionCode are accepted"
/usr/bin/python3 - "$EF_SOURCE_DIR/tests/integration/functions/api_echo/app.py" "$tmp" <<'EOF'
import base64, json, os, sys, zipfile
app, tmp = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(tmp + "/big.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.write(app, "app.py")
    z.writestr("filler.bin", os.urandom(7 * 1024 * 1024 + 512 * 1024))
b64 = base64.b64encode(open(tmp + "/big.zip", "rb").read()).decode()
with open(tmp + "/create.json", "w") as f:
    json.dump({"FunctionName": "big", "Runtime": "python3.12", "Handler": "app.handler",
               "Role": "arn:aws:iam::000000000000:role/x", "Code": {"ZipFile": b64}}, f)
with open(tmp + "/code.json", "w") as f:
    json.dump({"ZipFile": b64}, f)
EOF
size=$(stat -c %s "$tmp/create.json")
[ "$size" -gt $((10 * MiB)) ] || fail "the CreateFunction body has only $size bytes"
code=$(curl -sS -o "$tmp/create.out" -w '%{http_code}' -X POST "$EF_BASE/2015-03-31/functions" \
  -H 'Content-Type: application/json' --data-binary @"$tmp/create.json")
[ "$code" = 201 ] || fail "a $size-byte CreateFunction gave $code: $(head -c 300 "$tmp/create.out")"
code=$(curl -sS -o "$tmp/code.out" -w '%{http_code}' -X PUT "$EF_BASE/2015-03-31/functions/big/code" \
  -H 'Content-Type: application/json' --data-binary @"$tmp/code.json")
[ "$code" = 200 ] || fail "a 10 MiB UpdateFunctionCode gave $code: $(head -c 300 "$tmp/code.out")"

# Configuration bodies fit the small limit: a 4 KB environment (Lambda's most).
note "UpdateFunctionConfiguration with a 4 KB environment"
/usr/bin/python3 -c 'import json; print(json.dumps({"Environment": {"Variables": {"TAG": "t", "PAD": "x" * 4000}}}))' >"$tmp/conf.json"
code=$(curl -sS -o "$tmp/conf.out" -w '%{http_code}' -X PUT \
  "$EF_BASE/2015-03-31/functions/big/configuration" --data-binary @"$tmp/conf.json")
[ "$code" = 200 ] || fail "UpdateFunctionConfiguration gave $code: $(cat "$tmp/conf.out")"

# Invocation routes are not held to the small limit: a 1 MiB + 1 event is invoked.
note "a 1 MiB invocation is served"
/usr/bin/python3 -c 'import json; print(json.dumps({"pad": "y" * (1024 * 1024)}))' >"$tmp/1m.json"
code=$(curl -sS -o "$tmp/inv.out" -w '%{http_code}' -X POST \
  "$EF_BASE/2015-03-31/functions/big/invocations" --data-binary @"$tmp/1m.json")
[ "$code" = 200 ] || fail "a 1 MiB invocation gave $code: $(head -c 300 "$tmp/inv.out")"
[ "$(json_get "$tmp/inv.out" 'len(j["event"]["pad"])')" = $((1024 * 1024)) ] ||
  fail "the event did not arrive whole"
[ "$(json_get "$tmp/inv.out" 'j["tag"]')" = t ] || fail "the configuration was not applied"

# The controller is still serving.
curl -fsS "$EF_BASE/healthz" | grep -q '"status":"ok"' || fail "controller unhealthy"
pod_stop
echo "PASS: http_limits"
