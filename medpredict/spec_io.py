"""Reading a YAML spec file and naming every invalid field: one way for every kind of spec.

Examples
--------
>>> from pydantic import BaseModel, ValidationError
>>> class Toy(BaseModel):
...     n: int
>>> try:
...     Toy.model_validate({"n": "many"})
... except ValidationError as err:
...     print(field_problems(err))
n: Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medpredict.data.errors import SpecError


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; a :class:`SpecError` when it is not one."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a mapping of fields")
    return raw


def field_problems(err: ValidationError) -> str:
    """Every invalid field of a pydantic error as ``field.path: message``, joined by ``;``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()
    )
