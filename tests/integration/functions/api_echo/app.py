import os

# The API tests publish versions of this file with CODE rewritten, and check that each version
# runs its own code and configuration.
CODE = "v1"


def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "code": CODE,
        "tag": os.environ.get("TAG", ""),
        "version": context.function_version,
        "arn": context.invoked_function_arn,
        "memory": int(context.memory_limit_in_mb),
        "event": event,
    }
