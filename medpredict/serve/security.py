"""FastAPI dependencies that authenticate, authorise and rate-limit each request.

Credentials: an API key in ``X-API-Key`` or a JWT in ``Authorization: Bearer``.
Answers: 401 when credentials are missing or wrong (and 429 once a client
address has failed too often), 403 when the caller lacks the role, 429 with
``Retry-After`` when the caller exceeds its rate. Keys and tokens never reach the
logs; the caller's id does.

Examples
--------
>>> from medpredict.serve.config import ServeSettings
>>> Authenticator(ServeSettings())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: no credentials are configured: give a keys file or JWT settings ...
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from medpredict.serve.auth import JWTVerifier, KeyStore, Principal
from medpredict.serve.config import ServeSettings
from medpredict.serve.ratelimit import RateLimiter

logger = logging.getLogger("medpredict.serve")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API key issued by an administrator."
)
bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description="OAuth2 bearer JWT.")
ANONYMOUS = Principal("anonymous", frozenset({"clinician"}), "anonymous")


class Authenticator:
    """Checks credentials against the configured key store and JWT verifier."""

    def __init__(self, settings: ServeSettings) -> None:
        self.keys = KeyStore.from_file(settings.keys_file) if settings.keys_file else None
        self.jwt = None
        if settings.jwt_secret is not None or settings.jwt_public_key_file is not None:
            self.jwt = JWTVerifier(
                secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
                public_key=settings.jwt_public_key_file.read_text()
                if settings.jwt_public_key_file
                else None,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        if self.keys is None and self.jwt is None and not settings.allow_anonymous:
            raise ValueError(
                "no credentials are configured: give a keys file or JWT settings "
                "(or allow_anonymous for a demo)"
            )
        self.allow_anonymous = settings.allow_anonymous
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        failures = settings.failed_auth_per_minute
        self.failures = RateLimiter(failures, failures)

    def identify(
        self, request: Request, api_key: str | None, token: str | None
    ) -> Principal:
        """The caller, or an HTTP error (401, or 429 after repeated failures)."""
        client = request.client.host if request.client else "unknown"
        principal = None
        if api_key and self.keys is not None:
            principal = self.keys.authenticate(api_key)
        elif token and self.jwt is not None:
            principal = self.jwt.authenticate(token)
        elif not api_key and not token and self.allow_anonymous:
            principal = ANONYMOUS
        if principal is not None:
            return principal
        wait = self.failures.acquire(client)
        logger.warning("authentication failed from %s on %s", client, request.url.path)
        if wait:
            raise _too_many(wait, "too many failed authentications")
        raise HTTPException(
            401,
            "missing or invalid credentials (X-API-Key header or Bearer token)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _too_many(wait: float, why: str) -> HTTPException:
    return HTTPException(429, why, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency admitting callers holding any of ``roles``, within their rate.

    It runs on the event loop (no worker thread): checking a key hash or a token
    signature takes microseconds.
    """

    async def dependency(
        request: Request,
        api_key: Annotated[str | None, Security(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        auth: Authenticator = request.app.state.auth
        principal = auth.identify(
            request, api_key, credentials.credentials if credentials else None
        )
        request.state.principal = principal.id
        if not principal.roles & set(roles):
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        wait = auth.limiter.acquire(principal.id)
        if wait:
            raise _too_many(wait, "rate limit exceeded")
        return principal

    return dependency
