"""Image cohorts as a study: a table of image references with a split column, and its spec.

:func:`split_table` turns train/validation/test :class:`ImageCohort` objects into one
study table (``image``, ``label``, ``patient_id`` when known, ``split``, and any
sensitive attributes); :func:`image_study_spec` writes the study spec that runs it with
the fixed validation scheme: candidates fitted on the training images (networks
early-stop on an inner split of them), selected on the validation images, the chosen
model refitted on both and scored once on the test images. :func:`write_image_study`
writes both into a folder, so ``medpredict run <folder>/study.yaml`` runs (or reruns)
the study.

Examples
--------
>>> import tempfile
>>> from medpredict.imaging.cohort import load_medmnist
>>> from medpredict.settings import require_data
>>> splits = load_medmnist(require_data("images/breastmnist_28.npz"))
>>> table = split_table({k: v.subset(range(5)) for k, v in splits.items()})
>>> table["split"].value_counts().to_dict()
{'train': 5, 'validation': 5, 'test': 5}
>>> from medpredict.spec import load_spec
>>> path = write_image_study(tempfile.mkdtemp(), splits, ["probe"], name="breast")
>>> spec = load_spec(path)
>>> spec.validation.scheme, spec.positive_class, spec.models
('fixed', 0, ['probe'])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medpredict.data.errors import DataError
from medpredict.evaluation.splits import inner_split
from medpredict.imaging.cohort import ImageCohort
from medpredict.spec import StudySpec, parse_spec

TABLE_FILE = "images.csv"
SPEC_FILE = "study.yaml"
SPLITS = ("train", "validation", "test")
DEFAULT_MODELS = ("probe", "probe_finetune")
VALIDATION_FRACTION = 0.15
# Explaining a single image-reference column needs few rows; refitting networks for a
# learning curve would multiply the training time.
IMAGE_TRUST = {"learning_curve": False, "explain_rows": 10, "explain_background": 10}


def hold_out_validation(train: ImageCohort, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and validation images: 15% validate, whole patients.

    Raises
    ------
    DataError
        When the training images are too few to hold any out.
    """
    _, y_index = np.unique(train.labels, return_inverse=True)
    rows, held = inner_split(y_index, train.patient_ids, VALIDATION_FRACTION, seed)
    if held.size == 0:
        raise DataError(
            f"too few training images ({len(train)}) to hold out 15% for validation; "
            "give a validation split"
        )
    return rows, held


def split_table(
    splits: dict[str, ImageCohort], attributes: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """One study table of the ``train``, ``validation`` and ``test`` cohorts.

    Parameters
    ----------
    splits : cohort per split (``val`` is accepted for ``validation``).
    attributes : per split, extra columns (e.g. sensitive attributes) aligned with its
        images.
    """
    parts = []
    for split, cohort in splits.items():
        name = "validation" if split == "val" else split
        if name not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        part = cohort.frame()
        part["split"] = name
        extra = (attributes or {}).get(split)
        if extra is not None:
            part = pd.concat([part, extra.reset_index(drop=True)], axis=1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _study_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "image-study"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _model_entry(model: str | dict[str, Any], params: dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(model, str):
        return {"name": model, "params": params} if params else model
    return {"name": model["name"], "params": params | dict(model.get("params", {}))}


def image_study_spec(
    table: pd.DataFrame,
    models: list[str | dict[str, Any]],
    output_dir: str | Path,
    name: str = "image-study",
    positive_label: Any = None,
    class_names: dict[Any, str] | None = None,
    sensitive: list[str] | None = None,
    size: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> StudySpec:
    """The study spec of a :func:`split_table` written to ``output_dir`` as ``images.csv``.

    Parameters
    ----------
    table : the study table.
    models : registered model names (e.g. the recipes ``probe``, ``probe_finetune``), or
        ``{name, params}`` entries.
    output_dir : where the table, spec, report, metrics and model go.
    name : study name (unsafe characters become ``-``).
    positive_label : the label that counts as the event (binary); default the last label.
    class_names : display name per label, stated in the report and model card.
    sensitive : columns of ``table`` audited for fairness.
    size : images resized to ``size`` x ``size`` on load.
    bootstrap, seed : as in every study spec.
    """
    labels = sorted(table["label"].unique().tolist(), key=str)
    binary = len(labels) == 2
    positive = positive_label if positive_label is not None else labels[-1]
    counts = table["split"].value_counts()
    named = ", ".join(f"{k} = {v}" for k, v in (class_names or {}).items())
    params = {} if size is None else {"image_size_on_load": size}
    out = Path(output_dir).resolve()
    raw = {
        "name": _study_name(name),
        "description": (
            f"Image study: {counts.get('train', 0)} training, "
            f"{counts.get('validation', 0)} validation and {counts.get('test', 0)} test images."
            + (f" Labels: {named}." if named else "")
        ),
        "data": {"path": TABLE_FILE},
        "target": "label",
        "task": "binary" if binary else "multiclass",
        "positive_class": _plain(positive) if binary else None,
        "patient_column": "patient_id" if "patient_id" in table.columns else None,
        "features": {"image": "image"},
        "sensitive_attributes": list(sensitive or []),
        "validation": {"scheme": "fixed", "split_column": "split"},
        "models": [_model_entry(m, params) for m in models],
        "bootstrap": bootstrap,
        "seed": seed,
        "trust": IMAGE_TRUST | ({"outcome_definition": f"label ({named})"} if named else {}),
        "output_dir": str(out),
    }
    return parse_spec(raw, base_dir=out)


def write_image_study(
    out: str | Path,
    splits: dict[str, ImageCohort],
    models: list[str | dict[str, Any]] | None = None,
    attributes: dict[str, pd.DataFrame] | None = None,
    **options: Any,
) -> Path:
    """Write ``images.csv`` and ``study.yaml`` into ``out``; the spec's path.

    ``splits`` holds ``train`` and ``test`` cohorts and, optionally, ``val`` (else 15% of
    the training images, by patient, validate). ``options`` go to
    :func:`image_study_spec`; ``positive_label`` and ``class_names`` default to the
    training cohort's.
    """
    splits, attributes = dict(splits), dict(attributes or {})
    train = splits["train"]
    if splits.get("val") is None:
        rows, held = hold_out_validation(train, options.get("seed", 0))
        splits["train"], splits["val"] = train.subset(rows), train.subset(held)
        if "train" in attributes:
            extra = attributes["train"].reset_index(drop=True)
            attributes["train"], attributes["val"] = extra.iloc[rows], extra.iloc[held]
    options.setdefault("positive_label", train.positive_label)
    options.setdefault("class_names", train.class_names)
    table = split_table({k: splits[k] for k in ("train", "val", "test")}, attributes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = image_study_spec(table, list(models or DEFAULT_MODELS), out, **options)
    table.to_csv(out / TABLE_FILE, index=False)
    raw = spec.model_dump(mode="json", exclude_defaults=True)
    raw["data"] = {"path": TABLE_FILE}
    path = out / SPEC_FILE
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
