"""How the service writes its answers: compact ASCII JSON, as plain JSON or FHIR JSON.

Examples
--------
>>> JSONAnswer({"risk": 0.25, "note": "é"}).body
b'{"risk":0.25,"note":"\\\\u00e9"}'
"""

import json
from typing import Any

from fastapi.responses import JSONResponse

FHIR_JSON = "application/fhir+json"


class JSONAnswer(JSONResponse):
    """JSON escaped to ASCII, so text that is not valid Unicode cannot break an answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")
