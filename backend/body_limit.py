"""The request body limit, enforced while the body streams in, with or without Content-Length.

A limit checked against Content-Length alone lets a chunked body (``Transfer-Encoding: chunked``,
no length) through: the framework would read all of it into memory before any route sees it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.sync.wire import ErrorBody, ErrorDetail


def _declared_length(scope: Scope) -> int | None:
    """Content-Length as declared; None when absent. The HTTP server refuses malformed ones."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None


class BodyLimit:
    """Pure ASGI middleware: counts the bytes of ``http.request`` messages as the app reads them
    and answers 413 (the API's error shape, ``Connection: close``) as soon as the count passes
    ``max_bytes``. Nothing is buffered here: uvicorn hands the app the body in small pieces and
    stops reading the socket until the app asks for more, so the server holds at most the limit.

    A declared Content-Length over the limit is refused before the app runs. When a streamed body
    passes the limit, the 413 goes out at once, the app is told the client went away, and
    whatever it answers to that is dropped; ``Connection: close`` makes the server stop reading
    the rest instead of draining it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes
        self._body = (
            ErrorBody(
                error=ErrorDetail(
                    code="body_too_large",
                    message=f"request body over {max_bytes} bytes",
                    data={"limit_bytes": max_bytes},
                )
            )
            .model_dump_json()
            .encode()
        )

    async def _refuse(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        refused = started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is out; the app's answer to the "disconnect" goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)
