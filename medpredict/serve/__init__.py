"""Prediction service: JSON, FHIR R4 and CDS Hooks, with auth, audit log and a web page.

Start it with ``medpredict serve --model runs/pima/model --keys-file keys.json`` or,
in Python, ``uvicorn.run(create_app([...], ServeSettings(...)))``. See
``docs/serving.md``. The application is imported on first use, so the command line
starts quickly.
"""

from typing import Any

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from medpredict.serve.app import create_app

        return create_app
    if name == "ServeSettings":
        from medpredict.serve.config import ServeSettings

        return ServeSettings
    raise AttributeError(f"module 'medpredict.serve' has no attribute {name!r}")
