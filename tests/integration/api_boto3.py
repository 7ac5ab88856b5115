#!/usr/bin/python3
"""The Lambda management API through Debian's boto3 (package python3-boto3), against the pod
api_boto3.sh started with --auth-keys. Reads EF_BASE, EF_DATA, EF_SOURCE_DIR and the key pair
EF_KEY_ID / EF_KEY_SECRET from the environment; exits non-zero with a message on the first
failed check."""
import base64
import concurrent.futures
import hashlib
import io
import json
import os
import sys
import time
import zipfile

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

BASE = os.environ["EF_BASE"]
DATA = os.environ["EF_DATA"]
SRC = os.path.join(os.environ["EF_SOURCE_DIR"], "tests/integration/functions/api_echo/app.py")
KEY_ID = os.environ["EF_KEY_ID"]
SECRET = os.environ["EF_KEY_SECRET"]
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def client(key_id=KEY_ID, secret=SECRET, signed=True):
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    if not signed:
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    return boto3.client("lambda", endpoint_url=BASE, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret, config=config)


lam = client()


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")


def expect_error(code, status, fn, *args, **kwargs):
    """Calls fn, which must fail with Lambda error `code` and HTTP `status`; returns the error."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        http = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check(got == code and http == status,
              f"{fn.__name__}: expected {code} ({status}), got {got} ({http}): {e}")
        check(e.response["Error"]["Message"], f"{code} carries no message")
        return e
    sys.exit(f"FAIL: {fn.__name__}{kwargs} succeeded; expected {code}")


def make_zip(code_tag):
    with open(SRC) as f:
        text = f.read().replace('CODE = "v1"', f'CODE = "{code_tag}"')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.py", text)
    return buf.getvalue()


def sha_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def on_disk(data):
    return os.path.exists(os.path.join(DATA, "code/zips", hashlib.sha256(data).hexdigest() + ".zip"))


def invoke(name, payload=None, **kwargs):
    r = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}), **kwargs)
    body = r["Payload"].read()
    return r, json.loads(body) if body else None


def create(name, zip_bytes, **kwargs):
    params = {"Runtime": "python3.12", "Handler": "app.handler",
              "Role": "arn:aws:iam::123456789012:role/lambda", **kwargs}
    return lam.create_function(FunctionName=name, Code={"ZipFile": zip_bytes}, **params)


v1, v2, v3 = make_zip("v1"), make_zip("v2"), make_zip("v3")

print("--- create, get, waiters", flush=True)
r = create("py-echo", v1, MemorySize=256, Timeout=15, Description="boto3",
           Environment={"Variables": {"TAG": "one"}})
check(r["ResponseMetadata"]["HTTPStatusCode"] == 201, f"create status: {r}")
check(r["CodeSha256"] == sha_b64(v1) and r["CodeSize"] == len(v1), f"create code: {r}")
check(r["FunctionArn"] == ACCOUNT_ARN + "py-echo" and r["Version"] == "$LATEST", f"create: {r}")
check(r["Role"] == "arn:aws:iam::123456789012:role/lambda", f"create does not echo the Role: {r}")
lam.get_waiter("function_active_v2").wait(FunctionName="py-echo")
lam.get_waiter("function_exists").wait(FunctionName="py-echo")
g = lam.get_function(FunctionName="py-echo")
check(g["Configuration"]["Environment"]["Variables"] == {"TAG": "one"}, f"get_function: {g}")
for ref in ("py-echo", ACCOUNT_ARN + "py-echo", "123456789012:function:py-echo",
            "arn:aws:lambda:eu-west-1:123456789012:function:py-echo:$LATEST"):
    c = lam.get_function_configuration(FunctionName=ref)
    check(c["FunctionName"] == "py-echo" and c["MemorySize"] == 256, f"{ref}: {c}")

print("--- invoke", flush=True)
r, out = invoke("py-echo", {"n": 1})
check(r["StatusCode"] == 200 and r["ExecutedVersion"] == "$LATEST", f"invoke: {r}")
check(out["code"] == "v1" and out["tag"] == "one" and out["event"] == {"n": 1}, f"ran: {out}")
r = lam.invoke(FunctionName="py-echo", InvocationType="DryRun", Payload=b"{}")
check(r["StatusCode"] == 204, f"DryRun: {r}")

print("--- versions", flush=True)
p1 = lam.publish_version(FunctionName="py-echo", Description="first")
check(p1["Version"] == "1" and p1["FunctionArn"] == ACCOUNT_ARN + "py-echo:1", f"publish: {p1}")
check(lam.publish_version(FunctionName="py-echo")["Version"] == "1", "an unchanged publish")
u = lam.update_function_code(FunctionName="py-echo", ZipFile=v2, Publish=True)
check(u["Version"] == "2" and u["CodeSha256"] == sha_b64(v2), f"update_function_code: {u}")
lam.get_waiter("function_updated").wait(FunctionName="py-echo")
u = lam.update_function_configuration(FunctionName="py-echo", MemorySize=512, Timeout=30,
                                      Environment={"Variables": {"TAG": "two"}})
check(u["MemorySize"] == 512 and u["Environment"]["Variables"] == {"TAG": "two"}, f"{u}")
lam.get_waiter("function_updated_v2").wait(FunctionName="py-echo")
p3 = lam.publish_version(FunctionName="py-echo", CodeSha256=sha_b64(v2), Description="third")
check(p3["Version"] == "3" and p3["Description"] == "third", f"publish 3: {p3}")
lam.get_waiter("published_version_active").wait(FunctionName="py-echo", Qualifier="3")
e = expect_error("PreconditionFailedException", 412, lam.publish_version, FunctionName="py-echo",
                 CodeSha256=sha_b64(v1))
pages = lam.get_paginator("list_versions_by_function").paginate(
    FunctionName="py-echo", PaginationConfig={"PageSize": 1})
versions = [v["Version"] for page in pages for v in page["Versions"]]
check(versions == ["$LATEST", "1", "2", "3"], f"list_versions_by_function: {versions}")

for qualifier, code, tag, memory in (("1", "v1", "one", 256), ("2", "v2", "one", 256),
                                     ("3", "v2", "two", 512), ("$LATEST", "v2", "two", 512)):
    r, out = invoke("py-echo", Qualifier=qualifier)
    check(r["ExecutedVersion"] == qualifier, f"ExecutedVersion for {qualifier}: {r}")
    check((out["code"], out["tag"], out["memory"], out["version"]) ==
          (code, tag, memory, qualifier), f"version {qualifier} ran {out}")
r, out = invoke("py-echo:1")
check(out["arn"] == ACCOUNT_ARN + "py-echo:1" and r["ExecutedVersion"] == "1", f"{r} {out}")
expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="py-echo", Qualifier="7")
expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="py-echo:alias")
expect_error("InvalidParameterValueException", 400, lam.get_function,
             FunctionName="py-echo:1", Qualifier="2")
expect_error("InvalidParameterValueException", 400, lam.update_function_code,
             FunctionName="py-echo:1", ZipFile=v3)

print("--- an update while a call runs: the call finishes on its code, the next runs the new",
      flush=True)
# The "slow" code sleeps as long as the event asks; the update to v3 lands while it runs.
with open(SRC) as f:
    text = f.read().replace('CODE = "v1"', 'CODE = "slow"').replace(
        "def handler(event, context):", "import time\n\n\ndef handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("app.py", text)
slow = buf.getvalue()
lam.update_function_code(FunctionName="py-echo", ZipFile=slow)
with concurrent.futures.ThreadPoolExecutor(1) as pool:
    running = pool.submit(invoke, "py-echo", {"sleep": 2})
    time.sleep(0.8)
    lam.update_function_code(FunctionName="py-echo", ZipFile=v3)
    _, before = running.result()
_, after = invoke("py-echo")
check(before["code"] == "slow" and after["code"] == "v3", f"stale code: {before} then {after}")

print("--- list_functions paging", flush=True)
for n in ("py-a", "py-b", "py-c"):
    create(n, v1)
names = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate(
    PaginationConfig={"PageSize": 1}) for f in page["Functions"]]
check(names == ["py-a", "py-b", "py-c", "py-echo"], f"paginated list: {names}")
first = lam.list_functions(MaxItems=3)
check([f["FunctionName"] for f in first["Functions"]] == ["py-a", "py-b", "py-c"] and
      first.get("NextMarker"), f"first page: {first}")
second = lam.list_functions(MaxItems=3, Marker=first["NextMarker"])
check([f["FunctionName"] for f in second["Functions"]] == ["py-echo"] and
      "NextMarker" not in second, f"second page: {second}")
everything = lam.list_functions(FunctionVersion="ALL")["Functions"]
check(len(everything) == 7, f"FunctionVersion=ALL: {[f['FunctionArn'] for f in everything]}")

print("--- concurrency", flush=True)
r = lam.put_function_concurrency(FunctionName="py-a", ReservedConcurrentExecutions=0)
check(r["ReservedConcurrentExecutions"] == 0, f"put: {r}")
check(lam.get_function_concurrency(FunctionName="py-a")["ReservedConcurrentExecutions"] == 0,
      "get_function_concurrency")
e = expect_error("TooManyRequestsException", 429, lam.invoke, FunctionName="py-a", Payload=b"{}")
check(e.response.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded",
      f"429 Reason: {e.response}")
lam.delete_function_concurrency(FunctionName="py-a")
check("ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="py-a"),
      "concurrency after delete")
check(invoke("py-a")[0]["StatusCode"] == 200, "invoke after the reservation was removed")
lam.put_function_concurrency(FunctionName="py-b", ReservedConcurrentExecutions=7)
check(lam.get_function(FunctionName="py-b")["Concurrency"]["ReservedConcurrentExecutions"] == 7,
      "GetFunction.Concurrency")
expect_error("InvalidParameterValueException", 400, lam.put_function_concurrency,
             FunctionName="py-c", ReservedConcurrentExecutions=900)

print("--- errors", flush=True)
expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="ghost")
expect_error("ResourceNotFoundException", 404, lam.delete_function, FunctionName="ghost")
expect_error("ResourceNotFoundException", 404, lam.update_function_configuration,
             FunctionName="ghost", Timeout=3)
expect_error("ResourceConflictException", 409, create, "py-a", v1)
expect_error("InvalidParameterValueException", 400, create, "bad", v1, Runtime="java8")
expect_error("InvalidParameterValueException", 400, create, "bad", v1, MemorySize=10241)
expect_error("InvalidParameterValueException", 400, create, "bad", v1, Timeout=901)
expect_error("InvalidParameterValueException", 400, create, "x" * 65, v1)
expect_error("InvalidParameterValueException", 400, create, "bad", v1, Handler="nodot")
expect_error("InvalidParameterValueException", 400, create, "bad", v1,
             Environment={"Variables": {"BIG": "a" * 5000}})
expect_error("InvalidParameterValueException", 400, create, "bad", b"PK\x03\x04broken")
expect_error("InvalidParameterValueException", 400, lam.delete_function, FunctionName="py-echo",
             Qualifier="$LATEST")
expect_error("RequestTooLargeException", 413, lam.invoke, FunctionName="py-echo",
             Payload=b'"' + b"a" * (7 * 1024 * 1024) + b'"')
broken = make_zip("broken")
create("py-broken", broken)
h = hashlib.sha256(broken).hexdigest()
os.unlink(os.path.join(DATA, "code/zips", h + ".zip"))
os.system(f"rm -rf '{os.path.join(DATA, 'code/extracted', h)}'")
expect_error("ServiceException", 500, lam.invoke, FunctionName="py-broken", Payload=b"{}")

print("--- SigV4", flush=True)
expect_error("InvalidSignatureException", 403, client(secret="wrong").list_functions)
expect_error("UnrecognizedClientException", 403, client(key_id="AKIDNOBODY").list_functions)
expect_error("MissingAuthenticationTokenException", 403, client(signed=False).list_functions)

print("--- delete a version, then the functions; their code goes", flush=True)
check(on_disk(v1) and on_disk(v2), "code on disk before the deletes")
lam.delete_function(FunctionName="py-echo", Qualifier="1")
expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="py-echo",
             Qualifier="1")
for n in ("py-echo", "py-a", "py-b", "py-c"):
    r = lam.delete_function(FunctionName=n)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 204, f"delete {n}: {r}")
deadline = time.time() + 10
while time.time() < deadline and any(on_disk(z) for z in (v1, v2, v3, slow)):
    time.sleep(0.1)
check(not any(on_disk(z) for z in (v1, v2, v3, slow)), "unused code left in the code store")
left = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
check(left == ["py-broken"], f"functions left: {left}")
print("boto3 checks passed")
