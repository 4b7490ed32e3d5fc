"""ASGI middleware: body-size limit, security headers, and patient-free request logs.

The request log records method, path, status, duration and caller id, never a
body, a query string or a header value, so no patient data reaches application
logs. Unhandled errors are answered with a generic 500 and logged by exception
type only, since an exception message may quote input values.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("medpredict.serve")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
PAGE_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class BodyLimit:
    """Answer 413 to bodies over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _send_error(send, scope, 413, f"request body over {self.max_bytes} bytes")
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class RequestLog:
    """Log each request without patient data, add security headers, contain errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False
        page = not scope["path"].startswith(("/v1/", "/fhir/", "/cds-services"))

        async def wrapped(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if page:
                    headers.append((b"content-security-policy", PAGE_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except Exception as error:
            logger.error("unhandled %s on %s %s", type(error).__name__, scope["method"],
                         scope["path"])
            if not started:
                await _send_error(wrapped, scope, 500, "internal error")
        finally:
            principal = scope.get("state", {}).get("principal", "-")
            logger.info("%s %s %d %.1fms %s", scope["method"], scope["path"], status,
                        (time.perf_counter() - start) * 1000, principal)


_FHIR_CODES = {413: "too-costly", 500: "exception"}


async def _send_error(send: Any, scope: Scope, status: int, text: str) -> None:
    """An error answered before routing: an OperationOutcome on FHIR paths, else JSON."""
    if scope["path"].startswith("/fhir/"):
        issue = {"severity": "error", "code": _FHIR_CODES[status], "diagnostics": text}
        body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [issue]}
        await _send_json(send, status, body, b"application/fhir+json")
    else:
        await _send_json(send, status, {"detail": text})


async def _send_json(
    send: Any, status: int, body: dict[str, Any], media_type: bytes = b"application/json"
) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
