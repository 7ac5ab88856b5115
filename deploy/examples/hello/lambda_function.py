"""The sample function registered by deploy/all-in-one.sh.

It greets the caller and counts the invocations this warm container has served, which shows
warm reuse: the count grows while the same container keeps answering.
"""
import os

invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"hello called for {name}")
    return {
        "message": f"Hello, {name}!",
        "invocations_in_this_container": invocations,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_time_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "uid": os.getuid(),
    }
