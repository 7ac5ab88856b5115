import time

# The async tests' function: returns the event's id, the request id it ran under and when it
# ran, so that the tests can check delivery, ordering and concurrency from the results; fails
# when asked to.


def handler(event, context):
    start = time.time()
    ev = event if isinstance(event, dict) else {}
    print(f"probe {ev.get('id')} {context.aws_request_id}")
    if ev.get("fail"):
        raise RuntimeError(f"failing as asked: {ev.get('id')}")
    time.sleep(float(ev.get("sleep", 0)))
    return {
        "id": ev.get("id"),
        "request_id": context.aws_request_id,
        "start": start,
        "end": time.time(),
    }
