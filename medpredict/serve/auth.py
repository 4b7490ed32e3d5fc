"""Who is calling: hashed API keys or OAuth2 bearer JWTs, each with roles.

Roles
-----
``clinician``
    may request predictions (JSON, FHIR, CDS Hooks) and read model schemas;
``admin``
    may list the served models with their hashes and metrics, and reload them.

API keys are random 256-bit tokens shown once when created (:func:`new_api_key`);
only their SHA-256 is stored. A slow password hash is unnecessary for keys with
this much entropy, and SHA-256 keeps authentication well under a millisecond. A
presented key is compared with *every* stored hash in constant time.

Key files are JSON or YAML::

    {"keys": [{"id": "dr-smith", "sha256": "…", "roles": ["clinician"]}]}

Examples
--------
>>> key, entry = new_api_key("dr-smith", ["clinician"])
>>> store = KeyStore([entry])
>>> store.authenticate(key).id, store.authenticate("wrong") is None
('dr-smith', True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import jwt.algorithms
import yaml

ROLES = ("clinician", "admin")
KEY_PREFIX = "mpk_"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an id for the audit log, roles, and how it proved itself."""

    id: str
    roles: frozenset[str]
    method: str


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key, as stored in a key file."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key(key_id: str, roles: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """Create a key; return it (show it once) and the entry to store (hash only)."""
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"roles must be a non-empty subset of {ROLES}, got {roles}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, {"id": key_id, "sha256": hash_key(key), "roles": roles}


class KeyStore:
    """Hashed API keys with their caller ids and roles.

    Parameters
    ----------
    entries : dicts with ``id``, ``sha256`` (hex digest of the key) and ``roles``.
    """

    def __init__(self, entries: Iterable[dict[str, Any]]) -> None:
        self.entries = []
        for n, entry in enumerate(entries):
            digest = str(entry.get("sha256", ""))
            roles = entry.get("roles", [])
            if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ValueError(f"key entry {n} ({entry.get('id')!r}): 'sha256' must be 64 hex")
            if not entry.get("id") or not roles or set(roles) - set(ROLES):
                raise ValueError(
                    f"key entry {n}: needs an 'id' and 'roles' from {ROLES}, got {entry}"
                )
            self.entries.append((bytes.fromhex(digest), str(entry["id"]), frozenset(roles)))

    @classmethod
    def from_file(cls, path: str | Path) -> KeyStore:
        """Read a JSON or YAML key file."""
        path = Path(path)
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError(f"{path}: expected an object with a 'keys' list")
        return cls(data["keys"])

    def authenticate(self, key: str) -> Principal | None:
        """Return the key's principal, comparing with every entry in constant time."""
        presented = hashlib.sha256(key.encode("utf-8")).digest()
        found = None
        for digest, key_id, roles in self.entries:
            if hmac.compare_digest(presented, digest):
                found = Principal(key_id, roles, "api-key")
        return found


def add_key_to_file(path: str | Path, entry: dict[str, Any]) -> None:
    """Append a key entry to a JSON key file, creating it; refuse duplicate ids."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {"keys": []}
    if any(e["id"] == entry["id"] for e in data["keys"]):
        raise ValueError(f"{path} already has a key with id {entry['id']!r}")
    data["keys"].append(entry)
    KeyStore(data["keys"])
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)


class JWTVerifier:
    """Verify bearer JWTs signed with a shared secret (HS256) or a public key (RS/ES256).

    Tokens must carry ``sub`` and ``exp``; roles come from the ``roles`` claim.
    ``exp``, ``nbf`` and ``iat`` must be NumericDates (JSON numbers), not text.

    Examples
    --------
    >>> import time
    >>> verifier = JWTVerifier(secret="s" * 32)
    >>> token = jwt.encode({"sub": "ehr", "roles": ["clinician"], "exp": time.time() + 60},
    ...                    "s" * 32, algorithm="HS256")
    >>> sorted(verifier.authenticate(token).roles)
    ['clinician']
    """

    def __init__(
        self,
        secret: str | None = None,
        public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if (secret is None) == (public_key is None):
            raise ValueError("give exactly one of a JWT secret or a JWT public key")
        if secret is not None and len(secret) < 32:
            raise ValueError("the JWT secret must have at least 32 characters")
        if public_key is not None and not jwt.algorithms.has_crypto:
            raise ValueError("RS256/ES256 bearer tokens need the 'cryptography' package")
        self.key = secret if secret is not None else public_key
        self.algorithms = ["HS256"] if secret is not None else ["RS256", "ES256"]
        self.audience = audience
        self.issuer = issuer

    def authenticate(self, token: str) -> Principal | None:
        """Return the token's principal, or None if it is invalid, expired or role-less."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        if not all(_numeric_date(claims[c]) for c in ("exp", "nbf", "iat") if c in claims):
            return None
        roles = claims.get("roles", [])
        if not isinstance(roles, list):
            return None
        roles = frozenset(r for r in roles if r in ROLES)
        if not roles:
            return None
        return Principal(str(claims["sub"]), roles, "jwt")


def _numeric_date(value: Any) -> bool:
    """Whether a time claim is a JSON number (RFC 7519 NumericDate)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
