#!/usr/bin/python3
"""The comparison point for warm invocations: the same no-op handler served straight by
/usr/bin/python3's ThreadingHTTPServer, with TCP_NODELAY and a listen backlog of 128 so that it
measures Python, not Nagle's algorithm or dropped SYNs.  Usage: direct_python_server.py PORT"""
import http.server
import json
import socket
import sys


def handler(event, context):
    return {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        event = json.loads(self.rfile.read(length) or b"{}")
        body = json.dumps(handler(event, None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request, client_address):
        # wrk closes its connections at the end of a run, often in the middle of a request:
        # that is the client going away, not a failure worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
