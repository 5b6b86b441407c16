"""Loopback HTTP sink: the fake Datadog agent for ddtrace and the Pyroscope server stand-in.

Answers 200 to every request (JSON "{}" body). The body of every POST whose path is not
ddtrace's telemetry/trace traffic is saved as <dir>/<seq>.bin with the path in <seq>.path, so
the harness can decode pyroscope-io's uploads. Prints "PORT <n>" on stdout once listening.

    python sink.py DIR
"""
import itertools
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = sys.argv[1]
SEQ = itertools.count(1)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self):
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer()

    def do_PUT(self):
        self._body()
        self._answer()

    def do_POST(self):
        data = self._body()
        if not any(p in self.path for p in ("telemetry", "/v0.", "/info", "/debugger", "/evp_proxy")):
            with LOCK:
                seq = next(SEQ)
            with open(os.path.join(OUT, "%06d.path" % seq), "w") as f:
                f.write(self.path + "\n" + self.headers.get("Content-Type", "") + "\n")
            with open(os.path.join(OUT, "%06d.bin" % seq), "wb") as f:
                f.write(data)
        self._answer()


def main():
    os.makedirs(OUT, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
