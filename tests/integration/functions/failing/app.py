def handler(event, context):
    print("about to fail")
    raise ValueError("the event was not to my liking")
