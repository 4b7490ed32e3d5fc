"""Run the service under uvicorn with patient-free logging, in one or several processes.

With ``workers > 1`` uvicorn starts that many processes on one socket; each loads
the models itself (:func:`worker_app`) and appends to the same audit log. That
needs a database that serialises appends from several processes: PostgreSQL, where
every append takes a table lock, so the chain stays one unbroken sequence. A SQLite
log is refused with more than one worker. Each worker keeps its own rate-limit
counters, so a caller may reach up to ``workers`` times the per-caller limit.

Examples
--------
>>> from medpredict.serve.config import ServeSettings
>>> serve(["runs/pima/model"], ServeSettings(keys_file="keys.json"))  # doctest: +SKIP
>>> check_workers(2, ServeSettings(audit_url="sqlite:///audit.db"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
ValueError: --workers 2 needs a PostgreSQL audit log: a SQLite file takes one writer ...
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from medpredict.serve.app import create_app
from medpredict.serve.config import ENV_PREFIX, ServeSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What the worker processes serve; the settings travel as MEDPREDICT_* variables.
SERVED_ENV = "MEDPREDICT_SERVE_DIRECTORIES"


def check_workers(workers: int, settings: ServeSettings) -> None:
    """Refuse several workers unless the audit log is PostgreSQL.

    Raises
    ------
    ValueError
        For ``workers < 1``, or ``workers > 1`` with a non-PostgreSQL audit URL.
    """
    if workers < 1:
        raise ValueError(f"--workers {workers}: at least 1 worker process is needed")
    if workers > 1 and not settings.audit_url.startswith("postgresql"):
        raise ValueError(
            f"--workers {workers} needs a PostgreSQL audit log: a SQLite file takes one "
            "writer process, and several would race for the audit chain; serve with "
            "--workers 1, or set --audit-url postgresql+psycopg://..."
        )


def serve(
    models: list[str | Path],
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    log_level: str = "info",
    forecasts: list[str | Path] | None = None,
    workers: int = 1,
) -> None:
    """Serve ``models`` and ``forecasts`` until interrupted, in ``workers`` processes.

    uvicorn's access log is off: it would log query strings. The service's own
    request log records method, path, status, duration and caller id only. Models
    are verified before the workers start, so a bad directory stops the command.
    """
    check_workers(workers, settings)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    app: FastAPI | str = create_app(models, settings, forecasts)
    options = {}
    if workers > 1:
        app.state.predictions.close()
        _hand_to_workers(models, forecasts or [], settings)
        app, options = f"{__name__}:worker_app", {"factory": True, "workers": workers}
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level=log_level,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        server_header=False,
        proxy_headers=False,
        **options,
    )


def _hand_to_workers(
    models: list[str | Path], forecasts: list[str | Path], settings: ServeSettings
) -> None:
    """Put what the worker processes need into the environment they inherit."""
    directories = {"models": [str(m) for m in models], "forecasts": [str(f) for f in forecasts]}
    os.environ[SERVED_ENV] = json.dumps(directories)
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        secret = getattr(settings, name)
        raw = secret.get_secret_value() if hasattr(secret, "get_secret_value") else value
        os.environ[ENV_PREFIX + name.upper()] = (
            ",".join(raw) if isinstance(raw, list) else str(raw)
        )


def worker_app() -> FastAPI:
    """The service of one worker process, built from what :func:`serve` handed down."""
    directories = json.loads(os.environ[SERVED_ENV])
    return create_app(directories["models"], ServeSettings.from_env(), directories["forecasts"])
