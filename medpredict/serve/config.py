"""Settings of the prediction service, read from the environment or given in code.

Every setting has an environment variable ``MEDPREDICT_<NAME>`` (upper case), so
secrets such as the JWT signing secret never need to appear on a command line, in
a file under version control, or in code.

Examples
--------
>>> settings = ServeSettings(keys_file="keys.json")
>>> settings.allow_anonymous, settings.max_batch_rows
(False, 1000)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ENV_PREFIX = "MEDPREDICT_"


class ServeSettings(BaseModel):
    """How the service authenticates, limits, audits and exposes itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys_file: Path | None = Field(
        None, description="JSON/YAML file of hashed API keys (see `medpredict keys new`)."
    )
    jwt_secret: SecretStr | None = Field(
        None, description="Shared secret for HS256 bearer tokens."
    )
    jwt_public_key_file: Path | None = Field(
        None, description="PEM public key for RS256/ES256 bearer tokens."
    )
    jwt_audience: str | None = Field(None, description="Required `aud` claim of bearer tokens.")
    jwt_issuer: str | None = Field(None, description="Required `iss` claim of bearer tokens.")
    production: bool = Field(
        False,
        description=(
            "Production mode: refuse unsigned models, hide the interactive API docs, "
            "refuse anonymous callers."
        ),
    )
    allow_anonymous: bool = Field(
        False, description="Let requests without credentials predict (demos only)."
    )
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per caller per minute.")
    rate_limit_burst: int = Field(60, ge=1, description="Requests a caller may send at once.")
    failed_auth_per_minute: int = Field(
        30, ge=1, description="Failed authentications per client address per minute."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted.")
    max_batch_rows: int = Field(1000, ge=1, description="Most patients in one JSON request.")
    top_k: int = Field(5, ge=0, description="Number of top factors returned per prediction.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (none)."
    )
    audit_url: str = Field(
        "sqlite:///medpredict-audit.db",
        description="SQLAlchemy URL of the audit database (SQLite file or PostgreSQL).",
    )
    audit_hmac_key: SecretStr | None = Field(
        None, description="Key for HMAC-SHA256 input hashes instead of plain SHA-256."
    )
    audit_chain_key: SecretStr | None = Field(
        None,
        description="Key (≥ 32 bytes) for HMAC-SHA256 audit row hashes; keep it away from "
        "the audit database.",
    )
    fhir_mapping_file: Path | None = Field(
        None, description="LOINC-to-feature mapping used when a model declares none."
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Read ``MEDPREDICT_*`` variables; explicit ``overrides`` win.

        List settings (``cors_origins``) are comma-separated in the environment.
        """
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            if field.annotation == list[str]:
                values[name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
