"""The clinician web page: static files under ``/ui/``, and ``/`` leading there.

The page loads nothing from other sites and calls the JSON API with the API key
the clinician enters; it stores neither the key nor patient data.

Examples
--------
>>> [route.path for route in router.routes]
['/ui', '/']
"""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter()
router.mount(
    "/ui", StaticFiles(directory=str(files("medpredict.serve") / "static"), html=True), name="ui"
)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")
