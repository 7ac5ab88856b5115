-- wrk script: POST a small JSON event, as an invocation does.
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
