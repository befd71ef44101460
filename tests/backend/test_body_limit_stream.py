"""Defect 8 of issue 19: 300 MiB chunked (no Content-Length) to ``results:batch`` with no token
is refused while it streams, once MAX_BODY_BYTES have arrived, with 413 and not 401 (the limit
acts before authentication), and the server's memory does not grow with it.

Sent over a raw socket so the test controls the framing and sees exactly how many bytes were
on their way when the answer came.
"""

from __future__ import annotations

import json
import select
import socket
import time
from urllib.parse import urlsplit

from backend.app import MAX_BODY_BYTES
from core.sync.wire import API_PREFIX
from tests.backend.test_body_limit import PeakRss, Served, served  # noqa: F401 - the fixture

ATTACK_BYTES = 300 * 2**20
CHUNK = 2**20


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_answer(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    out = b""
    while b"\r\n\r\n" not in out:
        got = sock.recv(65536)
        if not got:
            break
        out += got
    head, _, rest = out.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(rest) < length:
        got = sock.recv(65536)
        if not got:
            break
        rest += got
    return head + b"\r\n\r\n" + rest


def test_chunked_batch_without_token_is_refused_while_streaming(
    served: Served,  # noqa: F811 - the fixture imported above
) -> None:
    parts = urlsplit(served.url)
    assert parts.hostname is not None
    assert parts.port is not None
    before = served.rss()
    sent = 0
    answered_after: int | None = None
    with PeakRss(served) as rss, socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            f"POST {API_PREFIX}/results:batch HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            + b"Idempotency-Key: attack\r\n\r\n"
        )
        sock.sendall(_chunk(b'{"items": [{"client_id": "'))
        block = _chunk(b"A" * CHUNK)
        start = time.monotonic()
        try:
            while sent < ATTACK_BYTES:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:  # the server answered (or hung up) before the body ended
                    answered_after = sent
                    break
                sock.sendall(block)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            answered_after = sent
        elapsed = time.monotonic() - start
        answer = _read_answer(sock)
    grown = rss.peak - before
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    print(
        f"chunked to results:batch, no token: '{status_line}' after {sent >> 20} MiB sent "
        f"in {elapsed:.2f} s; server RSS {before >> 20} -> peak {rss.peak >> 20} MiB "
        f"(+{grown >> 20} MiB)"
    )
    assert status_line.startswith("HTTP/1.1 413"), answer[:300]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "body_too_large"  # not 401: the limit came first
    assert answered_after is not None, "the server read all 300 MiB before answering"
    # refused once the limit arrived (plus what the socket buffers held), not at the end
    assert answered_after < MAX_BODY_BYTES + 16 * 2**20, f"answered after {sent >> 20} MiB"
    assert grown < 64 * 2**20, f"server RSS grew by {grown >> 20} MiB"
