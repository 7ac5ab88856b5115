# Sleeps as long as the event asks ({"sleep": seconds}) and says which container served it: the
# hostname is the container, and `count` grows only while one warm container serves.
import os
import socket
import time

count = 0


def handler(event, context):
    global count
    count += 1
    time.sleep(float(event.get("sleep", 0)))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "count": count,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "request_id": context.aws_request_id,
    }
