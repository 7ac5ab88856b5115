import os

count = 0


def handler(event, context):
    global count
    count += 1
    print(f"counter at {count} for {context.aws_request_id}")
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return {
        "event": event,
        "count": count,
        "uid": os.getuid(),
        "cap_eff": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "function_name": context.function_name,
        "memory_limit_in_mb": int(context.memory_limit_in_mb),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "greeting": os.environ.get("GREETING"),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
        "oom_score_adj": open("/proc/self/oom_score_adj").read().strip(),
        "runner_oom_score_adj": open("/proc/1/oom_score_adj").read().strip(),
    }
