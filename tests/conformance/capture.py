"""A loopback fake Datadog agent / intake that records every request.

``CaptureServer`` listens on 127.0.0.1 (an ephemeral TCP port) or on a unix
socket, answers every request (GET or POST, any path) and records it: method,
path, headers in the order they were received, body, arrival time. Its answer
to profile uploads is programmable:

* ``fail_first=N, fail_status=503``: the first N profile uploads get
  ``fail_status`` (the others 200);
* ``hang=True``: profile uploads never get an answer (the handler waits until
  the server is closed).

Everything else (``/info``, ``/telemetry/proxy/...``, ``/v0.x/traces``, ...)
gets ``200 {}``: ddtrace talks to its agent about more than profiles.

``parse_multipart`` splits a recorded ``multipart/form-data`` body into its
parts, checking the framing (CRLF line ends, closing delimiter).
"""

import os
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

PROFILE_PATHS = ("/profiling/v1/input", "/api/v2/profile")


class Request(object):
    __slots__ = ("method", "path", "headers", "body", "time", "status")

    def __init__(self, method, path, headers, body, when):
        self.method = method
        self.path = path
        self.headers = headers  # [(name, value)] as received
        self.body = body
        self.time = when
        self.status = None

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    @property
    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    @property
    def is_profile(self):
        return self.method == "POST" and self.path.split("?")[0] in PROFILE_PATHS

    def __repr__(self):
        return "Request(%s %s, %d bytes, status=%s)" % (
            self.method, self.path, len(self.body), self.status)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "capture"
    sys_version = ""

    def log_message(self, *args):  # quiet (and unix sockets have no address)
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        srv = self.server.capture
        body = self._read_body()
        req = Request(self.command, self.path, list(self.headers.items()), body, time.time())
        status = srv._decide(req)
        req.status = status
        with srv.lock:
            srv.requests.append(req)
        if status == "hang":
            srv.closing.wait(120)
            self.close_connection = True
            return
        payload = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = _handle


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class CaptureServer(object):
    def __init__(self, unix_path=None, fail_first=0, fail_status=503, hang=False):
        self.requests = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.hang = hang
        self._profile_count = 0
        self.unix_path = unix_path
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self._srv = _UnixServer(unix_path, _Handler)
            self.url = "unix://" + unix_path
        else:
            self._srv = _TCPServer(("127.0.0.1", 0), _Handler)
            self.url = "http://127.0.0.1:%d" % self._srv.server_address[1]
        self._srv.capture = self
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _decide(self, req):
        if not req.is_profile:
            return 200
        with self.lock:
            self._profile_count += 1
            n = self._profile_count
        if self.hang:
            return "hang"
        if n <= self.fail_first:
            return self.fail_status
        return 200

    def profiles(self, delivered_only=False):
        with self.lock:
            reqs = [r for r in self.requests if r.is_profile]
        if delivered_only:
            reqs = [r for r in reqs if r.status == 200]
        return reqs

    def close(self):
        self.closing.set()
        self._srv.shutdown()
        self._srv.server_close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------- multipart --

class Part(object):
    __slots__ = ("headers", "name", "filename", "content_type", "data")

    def __init__(self, headers, data):
        self.headers = headers  # [(name, value)]
        self.data = data
        disp = self.header("content-disposition") or ""
        m = re.search(r'\bname="([^"]*)"', disp)
        self.name = m.group(1) if m else None
        m = re.search(r'\bfilename="([^"]*)"', disp)
        self.filename = m.group(1) if m else None
        self.content_type = self.header("content-type")

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def __repr__(self):
        return "Part(name=%r, filename=%r, content_type=%r, %d bytes)" % (
            self.name, self.filename, self.content_type, len(self.data))


class MultipartError(ValueError):
    pass


def boundary_of(content_type):
    m = re.match(r'\s*multipart/form-data\s*;\s*boundary="?([^";]+)"?\s*$',
                 content_type or "", re.I)
    if not m:
        raise MultipartError("not multipart/form-data with a boundary: %r" % content_type)
    return m.group(1)


def parse_multipart(body, content_type):
    """Parts of a multipart/form-data body; raises MultipartError on bad framing."""
    boundary = boundary_of(content_type).encode()
    delim = b"--" + boundary
    if not body.startswith(delim + b"\r\n"):
        raise MultipartError("body does not start with the boundary line")
    closing = b"\r\n" + delim + b"--\r\n"
    if not body.endswith(closing) and not body.endswith(closing[:-2]):
        raise MultipartError("body does not end with the closing delimiter")
    inner = body[len(delim) + 2:body.rindex(closing[:-2])]
    parts = []
    for chunk in inner.split(b"\r\n" + delim + b"\r\n"):
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("part without a blank line after its headers")
        headers = []
        for line in head.split(b"\r\n"):
            k, colon, v = line.decode("latin-1").partition(":")
            if not colon:
                raise MultipartError("bad part header line %r" % line)
            headers.append((k.strip(), v.strip()))
        parts.append(Part(headers, data))
    return parts


def free_unix_path(tmpdir, name="agent.sock"):
    """A short unix socket path (sun_path is limited to ~107 bytes)."""
    path = os.path.join(str(tmpdir), name)
    if len(path) >= 100:
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="es-sock-"), name)
    return path


def tcp_port_refusing():
    """A loopback port nothing listens on (best effort)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
