"""Run the service under uvicorn with patient-free logging.

Examples
--------
>>> from medpredict.serve.config import ServeSettings
>>> serve(["runs/pima/model"], ServeSettings(keys_file="keys.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def serve(
    models: list[str | Path],
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    log_level: str = "info",
    forecasts: list[str | Path] | None = None,
) -> None:
    """Serve ``models`` and ``forecasts`` until interrupted (one process; loaded once).

    uvicorn's access log is off: it would log query strings. The service's own
    request log records method, path, status, duration and caller id only.
    """
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    app = create_app(models, settings, forecasts)
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
    )
