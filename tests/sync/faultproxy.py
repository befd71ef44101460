"""A small HTTP proxy on 127.0.0.1 that sits between the sync client and a live backend and
injects faults: connection resets (before or after the server saw the request), 500/503/429
with Retry-After, answers that arrive too late, truncated bodies, and an upstream that is down
while the server restarts. It can also act as a malicious mirror (``responder`` hook) for the
TUF attack tests.

Written here on purpose (a few dozen lines over http.server): off-the-shelf fault proxies need
a separate daemon, and the tests must control the fault of each request exactly.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = (
    "pass",
    "reset_before",  # connection reset before the server saw the request
    "reset_after",  # the server stored it, the answer is lost
    "timeout",  # the server stored it, the answer comes too late
    "truncated",  # the server stored it, half the answer arrives
    "500",
    "503",  # with Retry-After
    "429",  # with Retry-After
)

Responder = Callable[[str, str], "tuple[int, dict[str, str], Iterable[bytes]] | None"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # we reset the connection on purpose
            super().finish()

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, cut: int | None = None
    ) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self._reset()

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = proxy.next_fault(self.command, self.path)
        if fault == "reset_before":
            self._reset()
            return
        if fault in ("500", "503", "429"):
            headers = {"Content-Type": "application/json"}
            if fault != "500":
                headers["Retry-After"] = str(proxy.retry_after_s)
            msg = b'{"error":{"code":"injected","message":"injected fault","data":{}}}'
            self._send(int(fault), headers, msg)
            return
        if proxy.responder is not None:
            custom = proxy.responder(self.command, self.path)
            if custom is not None:
                self._stream(*custom)
                return
        try:
            resp = proxy.forward(self.command, self.path, dict(self.headers), body)
        except httpx.TransportError:
            proxy.count("upstream_down")
            self._reset()
            return
        if fault == "reset_after":
            self._reset()
            return
        if fault == "timeout":
            time.sleep(proxy.hold_s)
            self._reset()
            return
        headers = {
            k: v
            for k, v in resp.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        cut = len(resp.content) // 2 if fault == "truncated" else None
        self._send(resp.status_code, headers, resp.content, cut)

    def _stream(self, status: int, headers: dict[str, str], chunks: Iterable[bytes]) -> None:
        """A malicious mirror's answer; may never end (closed when the client hangs up)."""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets are the point


class FaultProxy:
    """``script(...)`` queues faults for the next matching requests; then everything passes."""

    def __init__(self, upstream: str, *, hold_s: float = 1.5, retry_after_s: int = 1) -> None:
        self.upstream = upstream
        self.hold_s, self.retry_after_s = hold_s, retry_after_s
        self.counts: Counter[str] = Counter()
        self.responder: Responder | None = None
        self.on_request: Callable[[int, str, str], None] | None = None
        self._plan: deque[str] = deque()
        self._match: Callable[[str, str], bool] = lambda _m, _p: True
        self._lock = threading.Lock()
        self._n = 0
        self._http = httpx.Client(timeout=60)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(
        self, faults: Iterable[str], match: Callable[[str, str], bool] | None = None
    ) -> None:
        with self._lock:
            self._plan = deque(faults)
            self._match = match or (lambda _m, _p: True)

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def next_fault(self, method: str, path: str) -> str:
        with self._lock:
            self._n += 1
            n = self._n
            fault = "pass"
            if self._plan and self._match(method, path):
                fault = self._plan.popleft()
            self.counts[fault] += 1
        if self.on_request is not None:
            self.on_request(n, method, path)
        return fault

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        drop = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
        fwd = {k: v for k, v in headers.items() if k.lower() not in drop}
        return self._http.request(method, self.upstream + path, headers=fwd, content=body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()
