"""Prediction service: JSON, FHIR R4 and CDS Hooks, with auth, audit log and a web page.

Start it with ``medpredict serve --model runs/pima/model --keys-file keys.json`` or,
in Python, ``uvicorn.run(create_app([...], ServeSettings(...)))``. See
``docs/serving.md``.
"""

from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

__all__ = ["ServeSettings", "create_app"]
