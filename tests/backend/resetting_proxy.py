"""A TCP proxy on 127.0.0.1 that loses answers: it forwards a connection's request to one of
several upstreams (round robin, as a load balancer does), then, for the connections it picks,
passes on only the first bytes of the response and resets both sides. The server has done the
work; the client sees a dropped connection.

Written here on purpose (a few dozen lines over sockets): the fault must hit exactly the bytes
after the request was processed, which an HTTP-level proxy cannot do as simply.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
from collections.abc import Callable


def _reset(sock: socket.socket) -> None:
    """Linger 0 (a reset, not a graceful close); shutdown first, which also wakes the other
    thread blocked in recv() on this socket (close() alone would wait for it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class ResettingProxy:
    """``cut(n)`` decides for the n-th accepted connection whether its answer is cut."""

    def __init__(
        self, upstreams: list[tuple[str, int]], cut: Callable[[int], bool], keep_bytes: int = 12
    ) -> None:
        self.upstreams, self.cut, self.keep_bytes = upstreams, cut, keep_bytes
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self._lock = threading.Lock()
        self._n = itertools.count()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            n = next(self._n)
            threading.Thread(target=self._serve, args=(client, n), daemon=True).start()

    def _serve(self, client: socket.socket, n: int) -> None:
        try:
            upstream = socket.create_connection(self.upstreams[n % len(self.upstreams)])
        except OSError:
            _reset(client)
            return
        cut = self.cut(n)

        def pump_up() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    upstream.sendall(data)

        threading.Thread(target=pump_up, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if cut:
                    client.sendall(data[: self.keep_bytes])
                    with self._lock:
                        self.cuts += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
