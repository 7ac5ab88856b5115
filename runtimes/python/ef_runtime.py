"""EasyFaaS Python runtime: a bootstrap on the AWS Lambda Runtime API (2018-06-01).

The executable the runner starts is `bootstrap`, next to this file; it only imports this module,
so that the module's compiled form (__pycache__, written by `easyfaas-runner prepare`) is loaded
instead of compiling this file at every start.

It follows Lambda's Python handler contract: _HANDLER is "module.function" (dotted packages and
"dir/module" paths allowed) relative to LAMBDA_TASK_ROOT, which comes first on sys.path; a
module that cannot be loaded is reported once to /init/error (Runtime.ImportModuleError,
Runtime.HandlerNotFound, Runtime.UserCodeSyntaxError, ...) and the bootstrap exits; then each
event from /next is passed to handler(event, context) and its result (JSON) or exception goes to
/response or /error, in the shapes Lambda's own runtime uses. As in Lambda, the root logger of
the logging module gets a handler that writes "[LEVEL]\t<UTC time>\t<request id>\t<message>"
to stdout, unless the user's code configured it first; the bootstrap never imports logging
itself (see setup_logging).

When AWS_LAMBDA_MAX_CONCURRENCY is N above 1, the bootstrap imports the handler once, then forks
N worker processes that each poll /next on their own connection and run one invocation at a
time: threads would share one interpreter lock and one os.environ (_X_AMZN_TRACE_ID), so CPU-bound
handlers would not run in parallel and per-invocation state would mix. An init error is
therefore reported once, by the parent, before any worker exists. The parent only waits: the
first worker to end ends the runtime with that worker's status (the runner then fails what was
in flight and the container is replaced), and workers die with the parent (PR_SET_PDEATHSIG).
With N = 1 nothing is forked and the one process serves as described below.

Only the standard library is used, and little of it, because every import is paid at each cold
start and every line of Python on the invocation path at each warm one:
* The interpreter runs with -S: the `site` module and the .pth files it executes cost about as
  much as the rest of the interpreter's start. The interpreter's site-packages directories are
  still put on sys.path (see emulate_site), so installed packages import as usual.
* The Runtime API client is a minimal HTTP/1.1 client on a raw socket instead of http.client
  (which pulls in email, ssl and more): one persistent TCP_NODELAY connection per process (per
  worker with N > 1), each request written with one send, responses read into a reusable buffer. The
  response to an invocation and the poll for the next one go out together (HTTP/1.1
  pipelining), and their two answers are read after one wake-up (see BATCHED_WAKEUP_BYTES).
* JSON goes through the json module's own C accelerator (_json) directly; the json package
  itself, which compiles regular expressions at import, is only loaded to report bad input.
"""

import _socket
import os
import sys
import time

# traceback, json and decimal are imported only when needed: they are not needed on the fast
# path and every import is paid at each cold start.

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# Lambda's limit on a synchronous response (6 MiB + 100 bytes); the Runtime API refuses larger
# bodies with 413.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
# The read buffer of a connection: a whole response head must fit in it (the runner's heads are
# a few hundred bytes; Lambda caps the client context at 3.5 KB).
READ_BUFFER_BYTES = 64 * 1024
# While the answer to an invocation and the poll for the next one are in flight together, the
# runtime waits (SO_RCVLOWAT) until this many bytes have arrived: the runner's 202 to the post
# (153 bytes) alone is not enough, the 202 with the next event is (a /next response carries the
# request id, deadline and ARN headers, so no server's is shorter than 180 bytes; the runner's
# are above 300). That saves a wake-up, a context switch and a Python pass per invocation: the
# runtime has nothing to do with the 202 before the next event anyway. (The pod's own Runtime API
# holds the 202 back and sends it with the next event; the mark is for servers that do not.) The
# wait is a peek and not the receive itself because a receive that has taken part of the data
# counts only what arrives afterwards against the mark, and could then wait for bytes that never
# come; a peek takes nothing.
BATCHED_WAKEUP_BYTES = 160
# The longest Lambda-Runtime-Function-Error-Type value sent (see header_safe).
MAX_HEADER_VALUE = 128
# Frames of this file are left out of the stack traces of user errors.
BOOTSTRAP_FILE = os.path.abspath(__file__)
# The runner allows at most 64 concurrent invocations per runtime; a larger value in the
# environment is not the runner's and is capped rather than trusted.
MAX_WORKERS = 64
PR_SET_PDEATHSIG = 1
# With N > 1 workers: libc (through ctypes) for prctl, and a pipe whose write end only the parent
# holds, for when prctl cannot be called.
_libc_for_prctl = None
_parent_pipe = None
# The request id of the invocation this process serves, for the records of the logging handler
# (see setup_logging); each worker process has its own.
_request_id = None
# Set once the logging module has been found loaded and the root logger seen to.
_logging_done = False
# Lambda's format of the records of the root logger's handler, with UTC times.
LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def emulate_site():
    """What `site` does that user code may rely on, without the rest: the interpreter's
    site-packages directories go on sys.path (Debian's dist-packages layout and the upstream
    one; .pth files are not executed), and exit() and quit() exist."""
    version = "python%d.%d" % sys.version_info[:2]
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix)):
        for path in (prefix + "/local/lib/" + version + "/dist-packages",
                     prefix + "/lib/python3/dist-packages",
                     prefix + "/lib/" + version + "/dist-packages",
                     prefix + "/lib/" + version + "/site-packages"):
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
    try:
        import _sitebuiltins
        import builtins

        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    except (ImportError, AttributeError):
        pass


# ---- JSON ------------------------------------------------------------------------------------

_WHITESPACE = " \t\n\r"


def _json_default(obj):
    # A Decimal can only come from an already imported decimal module.
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return float("nan")
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError("Object of type {} is not JSON serializable".format(type(obj).__name__))


class _DecoderSettings:
    """The attributes of json.JSONDecoder that the C scanner reads: json.loads's defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"),
                      "-Infinity": float("-inf")}.__getitem__


def _make_json_codec():
    """Returns the C accelerator's scanner and a factory of its encoders, or (None, None) when
    this interpreter has none or a different one; json is then used as it is."""
    try:
        import _json

        scan = _json.make_scanner(_DecoderSettings())
        make_encoder = _json.make_encoder
        encode_string = _json.encode_basestring

        def encoder():
            # A fresh marker dict per call, as json.dumps does: a failed call may leave markers.
            return make_encoder({}, _json_default, encode_string, None, ": ", ", ", False,
                                False, True)

        if scan('{"a": [1]}', 0) != ({"a": [1]}, 10) or encoder()({"a": 1}, 0) != ['{"a": 1}']:
            return None, None
        return scan, encoder
    except (ImportError, AttributeError, TypeError, ValueError, StopIteration):
        return None, None


_scan, _encoder = _make_json_codec()


def _fast_loads(text):
    """json.loads(text) through the accelerator, or None (not a JSON null) when it cannot say."""
    if _scan is None:
        return None
    n = len(text)
    i = 0
    while i < n and text[i] in _WHITESPACE:
        i += 1
    try:
        value, end = _scan(text, i)
    except Exception:
        # StopIteration or JSONDecodeError, or a SystemError: the scanner raises
        # JSONDecodeError only once json.decoder is loaded.
        return None
    if end == n or not text[end:].strip(_WHITESPACE):
        return (value,)
    return None


def json_loads(text):
    """json.loads(text) for a str: the same result, and the same exception for bad input."""
    result = _fast_loads(text)
    if result is not None:
        return result[0]
    # Bad input (or no accelerator): json itself says what is wrong, exactly as before.
    import json

    return json.loads(text)


def json_loads_utf8(data):
    """json.loads(data) for bytes: the same result, and the same exception for bad input."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith("\ufeff"):
        result = _fast_loads(text)
        if result is not None:
            return result[0]
    # Bad input, another encoding, or a byte order mark that json refuses: json decides.
    import json

    return json.loads(data)


def json_dumps(obj):
    """json.dumps(obj, ensure_ascii=False, default=_json_default)."""
    if _encoder is not None:
        return "".join(_encoder()(obj, 0))
    import json

    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def json_dumps_error(error):
    """An error document as json.dumps writes it (ASCII only); errors are off the fast path."""
    import json

    return json.dumps(error).encode()


# ---- Runtime API client ----------------------------------------------------------------------


class RemoteDisconnected(ConnectionResetError):
    """The Runtime API closed the connection before a response was complete."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class RuntimeAPI:
    """One persistent HTTP/1.1 connection to the Runtime API. Not shared: each worker process
    makes its own after the fork."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.host = host
        self.port = int(port)
        self.sock = None
        # SO_RCVLOWAT is BATCHED_WAKEUP_BYTES (armed) rather than 1.
        self.armed = False
        self.peek = bytearray(BATCHED_WAKEUP_BYTES)
        # Something has been received since the last requests were sent.
        self.received = False
        self.buf = bytearray(READ_BUFFER_BYTES)
        self.view = memoryview(self.buf)
        # Received bytes not consumed yet are buf[start:end].
        self.start = 0
        self.end = 0
        self.host_header = "Host: " + address + "\r\n"
        self.next_request = ("GET " + API_PREFIX + "/invocation/next HTTP/1.1\r\n" +
                             self.host_header + "\r\n").encode()

    def _connect(self):
        error = None
        # A host given as str goes through the "idna" codec, whose import (re, unicodedata,
        # stringprep) costs more than the rest of the bootstrap's: an ASCII host is passed as
        # bytes.
        host = self.host.encode("ascii") if self.host.isascii() else self.host
        for family, kind, proto, _, sockaddr in _socket.getaddrinfo(
                host, self.port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                error = e
                continue
            self.sock = sock
            self.armed = False
            self.start = self.end = 0
            return
        raise error or OSError("cannot resolve the Runtime API address " + self.host)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.start = self.end = 0

    def _recv_into(self, view):
        if self.armed:
            if not self.received:
                # The first receive after a batched send: wait until the mark is reached (or
                # the connection ends), then take everything there is.
                self.sock.recv_into(self.peek, BATCHED_WAKEUP_BYTES, _socket.MSG_PEEK)
            else:
                # What follows may be a short remainder: no mark for it.
                self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVLOWAT, 1)
                self.armed = False
        n = self.sock.recv_into(view)
        self.received = True
        return n

    def _fill(self):
        """Receives more bytes behind buf[end]; a peer that closed is RemoteDisconnected."""
        if self.end == len(self.buf):
            if self.start == 0:
                raise RuntimeError("a Runtime API response head is larger than {} bytes".format(
                    len(self.buf)))
            size = self.end - self.start
            self.buf[:size] = self.buf[self.start:self.end]
            self.start, self.end = 0, size
        n = self._recv_into(self.view[self.end:])
        if n == 0:
            raise RemoteDisconnected("the Runtime API closed the connection")
        self.end += n

    def _read_response(self):
        """Reads one response; returns it and whether the server closes the connection."""
        if self.start == self.end:
            self.start = self.end = 0
        buf = self.buf
        while True:
            head_end = buf.find(b"\r\n\r\n", self.start, self.end)
            if head_end >= 0:
                break
            self._fill()
        lines = buf[self.start:head_end].decode("utf-8", "replace").split("\r\n")
        status_line = lines[0]
        if not status_line.startswith("HTTP/1.") or not status_line[9:12].isdigit():
            raise RuntimeError("the Runtime API sent a malformed status line: {!r}".format(
                status_line[:100]))
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body_start = head_end + 4
        closes = headers.get("connection", "").lower() == "close" or status_line[7] == "0"

        length = headers.get("content-length")
        if "transfer-encoding" in headers:
            raise RuntimeError("the Runtime API sent a chunked response, which this runtime "
                               "does not read")
        if length is None:
            # No length: the body runs to the end of the connection.
            chunks = [bytes(self.view[body_start:self.end])]
            while True:
                n = self._recv_into(self.view)
                if n == 0:
                    break
                chunks.append(bytes(self.view[:n]))
            self.close()
            return Response(int(status_line[9:12]), headers, b"".join(chunks)), True
        if not length.isdigit():
            raise RuntimeError("the Runtime API sent a bad Content-Length: {!r}".format(length))
        length = int(length)
        have = self.end - body_start
        if have >= length:
            body = self.view[body_start:body_start + length].tobytes()
            self.start = body_start + length
        else:
            # A large body goes straight into a buffer of its own.
            body = bytearray(length)
            body[:have] = self.view[body_start:self.end]
            view = memoryview(body)
            while have < length:
                n = self._recv_into(view[have:])
                if n == 0:
                    raise RemoteDisconnected("the Runtime API closed the connection in the "
                                             "middle of a response")
                have += n
            self.start = self.end = 0
        return Response(int(status_line[9:12]), headers, body), closes

    def exchange(self, requests, batched_wakeup=False):
        """Sends the requests (bytes, each a whole request) in one write, pipelined, and returns
        their responses. `batched_wakeup` says that their answers together are always larger
        than BATCHED_WAKEUP_BYTES (a post and a /next poll). A keep-alive connection that the
        server has closed is only noticed when it is used: what was not answered is sent once
        more on a fresh connection. A repeated post is harmless (the runner refuses a second
        answer)."""
        responses = []
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                pending = requests[len(responses):]
                if batched_wakeup and len(pending) > 1 and not self.armed:
                    self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVLOWAT,
                                         BATCHED_WAKEUP_BYTES)
                    self.armed = True
                elif len(pending) == 1 and self.armed:
                    self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVLOWAT, 1)
                    self.armed = False
                self.received = False
                self.sock.sendall(b"".join(pending))
                while len(responses) < len(requests):
                    response, closes = self._read_response()
                    responses.append(response)
                    if closes:
                        self.close()
                        if len(responses) < len(requests):
                            raise RemoteDisconnected("the Runtime API closed the connection")
                return responses
            except (ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        return responses

    def post_request(self, path, body, error_type=None):
        """The bytes of a POST of a JSON body."""
        head = "POST {}{} HTTP/1.1\r\n{}Content-Type: application/json\r\n".format(
            API_PREFIX, path, self.host_header)
        if error_type is not None:
            head += ERROR_TYPE_HEADER + ": " + header_safe(error_type) + "\r\n"
        head += "Content-Length: {}\r\n\r\n".format(len(body))
        return head.encode() + body


def header_safe(text):
    """A header value from any text (an exception's type name is the user's): what is not
    printable ASCII becomes "?" and the value is cut to MAX_HEADER_VALUE characters, as the
    Node.js runtime does. The runner's HTTP parser refuses a request with a control character
    in a header, and the invocation would then never be answered."""
    text = str(text)[:MAX_HEADER_VALUE]
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def check_next(response):
    if response.status != 200:
        raise RuntimeError("GET /invocation/next answered {}: {!r}".format(
            response.status, response.body[:200]))
    return response


def check_post(path, response):
    if response.status != 202:
        sys.stderr.write("[WARNING] POST {}{} answered {}: {}\n".format(
            API_PREFIX, path, response.status,
            bytes(response.body[:200]).decode("utf-8", "replace")))
        sys.stderr.flush()


# ---- the Lambda programming model ------------------------------------------------------------


class FaultError(Exception):
    """A failure of the runtime's own (not an exception of the user's code)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data):
        data = data if isinstance(data, dict) else {}
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")

    def __init__(self, data):
        data = data if isinstance(data, dict) else {}
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data):
        self.client = Client(data.get("client")) if data.get("client") else None
        self.custom = data.get("custom")
        self.env = data.get("env")


class LambdaContext:
    """The context object handed to the handler, with Lambda's attributes."""

    # The function's own settings do not change while the runtime lives: read them once.
    _settings = None

    def __init__(self, request_id, deadline_ms, invoked_arn, client_context, identity):
        settings = LambdaContext._settings
        if settings is None:
            env = os.environ
            settings = LambdaContext._settings = (
                env.get("AWS_LAMBDA_LOG_GROUP_NAME"), env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
                env.get("AWS_LAMBDA_FUNCTION_NAME"),
                # A string, as in Lambda.
                env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
                env.get("AWS_LAMBDA_FUNCTION_VERSION"))
        self.aws_request_id = request_id
        (self.log_group_name, self.log_stream_name, self.function_name, self.memory_limit_in_mb,
         self.function_version) = settings
        self.invoked_function_arn = invoked_arn
        self.client_context = client_context
        self.identity = identity
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return ("LambdaContext([aws_request_id={},log_group_name={},log_stream_name={},"
                "function_name={},memory_limit_in_mb={},function_version={},"
                "invoked_function_arn={},client_context={},identity={}])").format(
                    self.aws_request_id, self.log_group_name, self.log_stream_name,
                    self.function_name, self.memory_limit_in_mb, self.function_version,
                    self.invoked_function_arn, self.client_context, self.identity)


def make_error(message, error_type, trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": trace or [],
    }


def error_from_exception(exc_info, request_id=None):
    """Lambda's error document for an exception of the user's code: the frames of this
    bootstrap are left out of the stack trace."""
    import traceback

    etype, value, tb = exc_info
    frames = traceback.extract_tb(tb)
    while frames and frames[0].filename == BOOTSTRAP_FILE:
        frames = frames[1:]
    return make_error(str(value), etype.__name__, traceback.format_list(frames), request_id)


def log_error(error):
    """Writes the error to the function's log the way Lambda's runtime does."""
    line = "[ERROR]"
    if error.get("errorType"):
        line += " " + error["errorType"]
    if error.get("errorMessage"):
        line += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        lines.extend(element.splitlines() or [""])
    sys.stdout.write("\n".join(lines) + "\n")


def setup_logging():
    """Gives the root logger the handler Lambda's runtime gives it, once the user's code has
    imported logging: records go to stdout in LOG_FORMAT with the request id of the invocation
    being served. Importing logging ourselves would cost every cold start about 10 ms, most
    handlers never log through it, and one that does imports it first; so this runs after the
    handler's module is loaded and then before each invocation until logging turns up (a module
    imported during an invocation is handled from the next one on). A root logger that already
    has handlers was configured by the user and is left as it is."""
    global _logging_done
    logging = sys.modules.get("logging")
    if logging is None:
        return
    _logging_done = True
    root = logging.getLogger()
    if root.handlers:
        return

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                record.aws_request_id = _request_id or ""
                # sys.stdout as it is now: the handler may have replaced it.
                sys.stdout.write(self.format(record))
            except Exception:
                self.handleError(record)

    formatter = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)
    formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)


def load_handler(name):
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as e:
        raise FaultError("Runtime.MalformedHandlerName", "Bad handler '{}': {}".format(name, e))
    if not module_name or not function_name:
        raise FaultError("Runtime.MalformedHandlerName",
                         "Bad handler '{}': the handler must be module.function".format(name))
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise FaultError("Runtime.BuiltInModuleConflict",
                         "Cannot use built-in module {} as a handler module".format(module_name))
    import_name = module_name.replace("/", ".")
    try:
        # What importlib.import_module does for an absolute name, without importing importlib.
        __import__(import_name)
        module = sys.modules[import_name]
    except ImportError as e:
        raise FaultError("Runtime.ImportModuleError",
                         "Unable to import module '{}': {}".format(module_name, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultError("Runtime.UserCodeSyntaxError",
                         "Syntax error in module '{}': {}".format(module_name, e), trace)
    try:
        handler = getattr(module, function_name)
    except AttributeError:
        raise FaultError("Runtime.HandlerNotFound",
                         "Handler '{}' missing on module '{}'".format(function_name, module_name))
    if not callable(handler):
        raise FaultError("Runtime.HandlerNotFound",
                         "Handler '{}' on module '{}' is not callable".format(
                             function_name, module_name))
    return handler


def _json_header(headers, name):
    value = headers.get(name)
    if not value:
        return None
    try:
        return json_loads(value)
    except ValueError:
        return None


def handle_one(api, handler, response):
    """Runs one invocation; returns the path and the bytes of the request that answers it."""
    global _request_id
    headers = response.headers
    request_id = headers.get("lambda-runtime-aws-request-id")
    if not request_id:
        raise RuntimeError("/invocation/next answered without Lambda-Runtime-Aws-Request-Id")
    _request_id = request_id
    if not _logging_done:
        setup_logging()
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
    except ValueError:
        deadline_ms = 0

    error = None
    try:
        body = response.body
        try:
            event = json_loads_utf8(body) if body else {}
        except ValueError as e:
            raise FaultError("Runtime.UnmarshalError", "Unable to unmarshal input: {}".format(e))
        client_context = _json_header(headers, "lambda-runtime-client-context")
        identity = _json_header(headers, "lambda-runtime-cognito-identity")
        context = LambdaContext(
            request_id, deadline_ms, headers.get("lambda-runtime-invoked-function-arn"),
            ClientContext(client_context) if isinstance(client_context, dict) else None,
            CognitoIdentity(identity))
        result = handler(event, context)
        try:
            payload = json_dumps(result).encode()
        except (TypeError, ValueError) as e:
            raise FaultError("Runtime.MarshalError", "Unable to marshal response: {}".format(e))
        if len(payload) > MAX_RESPONSE_BYTES:
            raise FaultError("Function.ResponseSizeTooLarge",
                             "Response payload size ({} bytes) exceeded maximum allowed payload "
                             "size ({} bytes).".format(len(payload), MAX_RESPONSE_BYTES))
    except FaultError as e:
        error = make_error(e.message, e.error_type, e.trace, request_id)
    except Exception:
        error = error_from_exception(sys.exc_info(), request_id)

    # Everything the invocation printed reaches the runner before its answer does.
    sys.stdout.flush()
    sys.stderr.flush()
    if error is not None:
        log_error(error)
        sys.stdout.flush()
        path = "/invocation/{}/error".format(request_id)
        return path, api.post_request(path, json_dumps_error(error), error["errorType"])
    path = "/invocation/{}/response".format(request_id)
    return path, api.post_request(path, payload)


def answer_refused(api, path, posted):
    """The Runtime API refused the post of an invocation's outcome: a refusal other than 403
    (already answered) or 413 (the runner failed the invocation as too large) would leave the
    invocation unanswered until its deadline, so the runtime's own error takes its place."""
    check_post(path, posted)
    status = posted.status
    if status < 400 or status >= 500 or status in (403, 413):
        return
    prefix = "/invocation/"
    request_id = path[len(prefix):path.rindex("/")]
    error = make_error("The Runtime API refused the function's {} with HTTP {}".format(
        path[path.rindex("/") + 1:], status), "Runtime.ResponseRefused", [], request_id)
    log_error(error)
    sys.stdout.flush()
    error_path = prefix + request_id + "/error"
    request = api.post_request(error_path, json_dumps_error(error), error["errorType"])
    check_post(error_path, api.exchange([request])[0])


def serve(api, handler):
    response = check_next(api.exchange([api.next_request])[0])
    while True:
        path, answer = handle_one(api, handler, response)
        posted, response = api.exchange([answer, api.next_request], batched_wakeup=True)
        if posted.status != 202:
            answer_refused(api, path, posted)
        check_next(response)


def max_concurrency():
    """AWS_LAMBDA_MAX_CONCURRENCY, 1 when unset or not a number, at most MAX_WORKERS."""
    try:
        return min(max(1, int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1"))), MAX_WORKERS)
    except ValueError:
        return 1


def die_with_parent(parent):
    """Makes this worker die with the parent: SIGKILL on the parent's death (PR_SET_PDEATHSIG),
    or, where prctl cannot be called, a thread that waits for the end of a pipe only the parent
    holds open. A parent already gone by now would never send the signal: then exit at once."""
    libc = _libc_for_prctl
    if libc is None or libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:
        import threading

        def watch():
            while os.read(_parent_pipe[0], 1):
                pass
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def worker(address, handler, parent):
    """A forked worker's life: poll and serve until the Runtime API fails; never returns."""
    code = 1
    try:
        die_with_parent(parent)
        serve(RuntimeAPI(address), handler)
    except SystemExit as e:
        # A handler that calls sys.exit() ends the runtime as it does with N = 1.
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        sys.stderr.write("easyfaas python runtime: worker {}: {}: {}\n".format(
            os.getpid(), type(e).__name__, e))
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve_workers(address, handler, concurrency):
    """Forks `concurrency` workers and waits; ends the process when the first one ends, with its
    status (the same signal when it was killed, so that an OOM kill reads as one)."""
    global _libc_for_prctl, _parent_pipe
    try:
        import ctypes

        _libc_for_prctl = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        pass
    # Close-on-exec, as every pipe os.pipe() makes: nothing the handler runs inherits it.
    _parent_pipe = os.pipe()
    # Buffered output would otherwise be written once per copy.
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    workers = set()
    try:
        for _ in range(concurrency):
            pid = os.fork()
            if pid == 0:
                os.close(_parent_pipe[1])
                worker(address, handler, parent)
            workers.add(pid)
    except OSError as e:
        # Most likely the container's process limit: the runtime cannot serve what it was
        # started for, and says so once instead of running short-handed.
        sys.stderr.write("easyfaas python runtime: cannot start worker {} of {}: {}\n".format(
            len(workers) + 1, concurrency, e))
        sys.stderr.flush()
        for pid in workers:
            os.kill(pid, 9)
        os._exit(1)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        # Children the handler module started while being imported are not workers.
        if pid in workers:
            break
    workers.discard(pid)
    for other in workers:
        os.kill(other, 9)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        import signal

        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP have no handler to reset.
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


def await_function(fd):
    """Started ahead of its function (runner init --prestart python): waits until the runner
    writes the function's environment, {"env": {name: value}}, to `fd` and closes it, then takes
    that environment as its own and the function's directory as its working directory (the code
    was mounted there after this process started). The runner only hands over functions whose
    environment does not change how an interpreter starts. No environment (the runner ended the
    wait) ends the process."""
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    if not chunks:
        sys.exit(0)
    env = json_loads_utf8(b"".join(chunks))["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))


def main():
    # Output reaches the runner line by line, so that it is not lost if the process dies in the
    # middle of an invocation; it is flushed completely before every response.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass

    if sys.flags.no_site:
        emulate_site()
    prestart_fd = os.environ.get("EF_PRESTART_FD")
    if prestart_fd:
        await_function(int(prestart_fd))
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    api = RuntimeAPI(address)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    sys.path.insert(0, task_root)

    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except FaultError as e:
        error = make_error(e.message, e.error_type, e.trace)
    except Exception:
        # The module raised while being imported: Lambda reports the exception itself.
        error = error_from_exception(sys.exc_info())
    else:
        error = None
    if error is not None:
        log_error(error)
        sys.stdout.flush()
        sys.stderr.flush()
        path = "/init/error"
        answer = api.exchange([api.post_request(path, json_dumps_error(error),
                                                error["errorType"])])[0]
        check_post(path, answer)
        sys.exit(1)

    # A handler module that imported logging has it set up before the first invocation (and,
    # with N > 1, before the fork, so that every worker inherits it).
    setup_logging()
    concurrency = max_concurrency()
    if concurrency > 1:
        serve_workers(address, handler, concurrency)
    serve(api, handler)

