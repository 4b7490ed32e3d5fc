"""An image study end to end: fit candidates, select on validation, score the test split.

:func:`run_image_study` fits every candidate on the training images (networks early-stop
on the validation split), chooses the model with the best validation AUROC, scores
every candidate on the untouched test split with bootstrap 95% confidence intervals
(clustered by patient when patient ids are known), and writes

``report.html``
    data, model comparison, ROC curves and Grad-CAM overlays of the selected model;
``metrics.json``
    every candidate's validation and test metrics, fit time and throughput;
``model/``
    the selected model (:func:`medpredict.artifact.save_model`): weights as NumPy
    arrays inside ``model.skops`` and, for networks (also the network of an averaged
    ``probe_finetune``), the backbone as ``weights.safetensors``, every file hashed in
    ``MANIFEST.json``.

For a binary task, risk is the probability of the cohort's ``positive_label`` (for
BreastMNIST: label 0, malignant), and AUROC measures detection of that class.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from medpredict.imaging.cohort import load_medmnist
>>> from medpredict.imaging.encoder import PretrainedImageEncoder
>>> from medpredict.settings import require_data
>>> data = load_medmnist(require_data("images/breastmnist_28.npz"))
>>> probe = make_pipeline(PretrainedImageEncoder(image_size=32), LogisticRegression(C=0.01))
>>> result = run_image_study(data["train"].subset(range(100)), data["test"].subset(range(60)),
...     {"probe": probe}, tempfile.mkdtemp(), val=data["val"], n_boot=50)
>>> result.best_name
'probe'
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from medpredict import __version__
from medpredict.artifact import save_model
from medpredict.data.errors import DataError
from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import (
    binary_metrics,
    multiclass_metrics,
    threshold_for_sensitivity,
)
from medpredict.evaluation.splits import inner_split
from medpredict.imaging.cohort import ImageCohort
from medpredict.imaging.ensemble import accepts_validation, network_weights
from medpredict.imaging.gradcam import gradcam_section
from medpredict.model_metadata import ModelMetadata
from medpredict.report.html import Section, callout, escape, figure, render, table
from medpredict.report.plots import roc_figure
from medpredict.versions import library_versions

SENSITIVITY_TARGET = 0.9


@dataclass
class ImageCandidate:
    """One fitted candidate with its validation and test performance."""

    name: str
    estimator: Any
    val_proba: np.ndarray
    test_proba: np.ndarray
    val_metrics: dict[str, Estimate]
    test_metrics: dict[str, Estimate]
    threshold: float | None
    fit_seconds: float
    images_per_second: float


@dataclass
class ImageStudyResult:
    """Everything an image study produced."""

    title: str
    classes: np.ndarray
    positive_label: Any
    class_names: dict[Any, str]
    candidates: dict[str, ImageCandidate]
    best_name: str
    n_images: dict[str, int]
    sections: list[Section] = field(default_factory=list)
    model_dir: Path | None = None
    report_path: Path | None = None

    @property
    def best(self) -> ImageCandidate:
        return self.candidates[self.best_name]


def _binary_metric_fn(threshold: float | None) -> Any:
    def metrics(y: np.ndarray, risk: np.ndarray) -> dict[str, float]:
        out = binary_metrics(y, risk, {"sens90": threshold} if threshold is not None else None)
        out["accuracy"] = float(np.mean((risk >= 0.5) == (y == 1)))
        return out

    return metrics


def _risk(proba: np.ndarray, classes: np.ndarray, positive: Any) -> np.ndarray:
    return proba[:, int(np.flatnonzero(classes == positive)[0])]


def _fit(estimator: Any, train: ImageCohort, val: ImageCohort) -> tuple[Any, float]:
    start = time.perf_counter()
    if accepts_validation(estimator):
        estimator.fit(train.images, train.labels, X_val=val.images, y_val=val.labels)
    else:
        estimator.fit(train.images, train.labels)
    return estimator, time.perf_counter() - start


def _timed_proba(estimator: Any, images: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    proba = estimator.predict_proba(images)
    return proba, len(images) / max(time.perf_counter() - start, 1e-9)


def _split_validation(train: ImageCohort, seed: int) -> tuple[ImageCohort, ImageCohort]:
    _, y_index = np.unique(train.labels, return_inverse=True)
    groups = train.patient_ids
    rows, held = inner_split(y_index, groups, 0.15, seed)
    if held.size == 0:
        raise DataError("too few training images to hold out a validation split; pass val=")
    return train.subset(rows), train.subset(held)


def run_image_study(
    train: ImageCohort,
    test: ImageCohort,
    candidates: dict[str, Any],
    out_dir: str | Path | None,
    val: ImageCohort | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "Image study",
    gradcam_samples: int = 8,
) -> ImageStudyResult:
    """Fit, select and test image models; write the report, metrics and model directory.

    Parameters
    ----------
    train, test : cohorts; ``test`` is only scored, never used for any choice.
    candidates : name -> unfitted estimator taking image arrays.
    out_dir : folder for ``report.html``, ``metrics.json`` and ``model/``; None writes nothing.
    val : validation cohort for early stopping, the sensitivity-0.9 threshold and model
        selection; default 15% of ``train`` (by patient).
    n_boot : bootstrap resamples for the confidence intervals.
    seed : seed of the bootstrap and of the default validation split.
    title : report title.
    gradcam_samples : correct and wrong test images shown with Grad-CAM (each).
    """
    if not candidates:
        raise ValueError("give at least one candidate model")
    if val is None:
        train, val = _split_validation(train, seed)
    classes = np.unique(train.labels)
    binary = classes.size == 2
    positive = train.positive_label if train.positive_label is not None else classes[-1]
    if binary and positive not in classes:
        raise DataError(f"positive label {positive!r} is not among the labels {classes.tolist()}")
    results: dict[str, ImageCandidate] = {}
    for name, template in candidates.items():
        estimator, seconds = _fit(clone(template), train, val)
        val_proba = estimator.predict_proba(val.images)
        test_proba, speed = _timed_proba(estimator, test.images)
        if binary:
            y_val = (val.labels == positive).astype(float)
            y_test = (test.labels == positive).astype(float)
            val_risk = _risk(val_proba, estimator.classes_, positive)
            threshold = threshold_for_sensitivity(y_val, val_risk, SENSITIVITY_TARGET)
            metric_fn = _binary_metric_fn(threshold)
            val_metrics = bootstrap(metric_fn, y_val, val_risk, n_boot=n_boot, seed=seed)
            test_metrics = bootstrap(
                metric_fn, y_test, _risk(test_proba, estimator.classes_, positive),
                n_boot=n_boot, seed=seed, groups=test.patient_ids,
            )
        else:
            threshold = None
            val_metrics = bootstrap(
                multiclass_metrics, np.searchsorted(classes, val.labels), val_proba,
                n_boot=n_boot, seed=seed,
            )
            test_metrics = bootstrap(
                multiclass_metrics, np.searchsorted(classes, test.labels), test_proba,
                n_boot=n_boot, seed=seed, groups=test.patient_ids,
            )
        results[name] = ImageCandidate(
            name, estimator, val_proba, test_proba, val_metrics, test_metrics, threshold,
            seconds, speed,
        )
    best = max(results, key=lambda n: results[n].val_metrics["auroc"].value)
    result = ImageStudyResult(
        title=title,
        classes=classes,
        positive_label=positive if binary else None,
        class_names=train.class_names or {c: str(c) for c in classes},
        candidates=results,
        best_name=best,
        n_images={"train": len(train), "val": len(val), "test": len(test)},
    )
    result.sections = image_sections(result, test, gradcam_samples, seed)
    if out_dir is not None:
        write_image_outputs(result, Path(out_dir), train)
    return result


def _headline(binary: bool) -> tuple[str, ...]:
    return ("auroc", "accuracy", "auprc", "brier") if binary else (
        "auroc", "accuracy", "macro_f1", "brier"
    )


def image_sections(
    result: ImageStudyResult, test: ImageCohort, gradcam_samples: int, seed: int
) -> list[Section]:
    """Report sections: data, model comparison, ROC curves, Grad-CAM of the selected model."""
    binary = result.positive_label is not None
    names = result.class_names
    counts = []
    for label in result.classes:
        counts.append([f"{label} ({names.get(label, label)})", int(np.sum(test.labels == label))])
    event = ""
    if binary:
        positive = result.positive_label
        event = (
            f"Risk is the probability of <b>{escape(names.get(positive, positive))}</b> "
            f"(label {escape(positive)}); AUROC measures its detection. "
        )
    data = Section(
        "Data",
        f"<p>{result.n_images['train']} training, {result.n_images['val']} validation and "
        f"{result.n_images['test']} test images. {event}Models are fitted on the training "
        "images, early-stopped and selected on the validation images, and scored once on the "
        "test images.</p>" + table(counts, ["test label", "images"]),
    )
    headline = _headline(binary)
    header = ["model", "validation AUROC"] + [f"test {m}" for m in headline]
    if binary:
        header += ["test sensitivity @ val sens-0.9 threshold", "test specificity"]
    header += ["fit s", "images/s"]
    rows, order = [], list(result.candidates)
    for name in order:
        c = result.candidates[name]
        row = [name, str(c.val_metrics["auroc"])] + [str(c.test_metrics[m]) for m in headline]
        if binary:
            row += [str(c.test_metrics[f"{m}@sens90"]) for m in ("sensitivity", "specificity")]
        rows.append([*row, f"{c.fit_seconds:.1f}", f"{c.images_per_second:.0f}"])
    comparison = Section(
        "Model comparison",
        "<p>Bootstrap 95% confidence intervals. The highlighted model has the best "
        "validation AUROC and is the one saved.</p>"
        + table(rows, header, highlight=order.index(result.best_name)),
    )
    sections = [data, comparison]
    if binary:
        curves = {
            name: (
                (test.labels == result.positive_label).astype(int),
                _risk(c.test_proba, c.estimator.classes_, result.positive_label),
            )
            for name, c in result.candidates.items()
        }
        sections.append(Section("ROC curves (test)", figure(roc_figure(curves), "ROC curves")))
    best = result.best
    sections.append(
        gradcam_section(
            best.estimator, test.images, test.labels, names, n_each=gradcam_samples, seed=seed,
            title=f"Grad-CAM of {best.name} (test images)",
        )
    )
    sections.append(
        Section("Limits", callout(
            "Performance is measured on one test split from the same source as the training "
            "images. Validate on images from the intended scanners, sites and population "
            "before clinical use."
        ))
    )
    return sections


def _metadata(result: ImageStudyResult, train: ImageCohort) -> ModelMetadata:
    best = result.best
    shape = list(train.images.shape[1:])
    return ModelMetadata(
        name=result.title,
        version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        task="binary" if result.positive_label is not None else "multiclass",
        target="label",
        positive_class=None if result.positive_label is None else str(result.positive_label),
        classes=[str(c) for c in result.classes],
        class_names={str(k): str(v) for k, v in result.class_names.items()},
        model=best.name,
        data_schema={"features": [{"name": "image", "kind": "image",
                                   "dtype": str(train.images.dtype), "shape": shape}]},
        metrics={k: v.to_dict() for k, v in best.test_metrics.items()},
        validation_metrics={k: v.to_dict() for k, v in best.val_metrics.items()},
        thresholds={} if best.threshold is None else {"sens90": best.threshold},
        training_rows=len(train),
        training_data_sha256=_sha256(train.images, train.labels),
        versions=library_versions(),
    )


def _sha256(images: np.ndarray, labels: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.asarray(labels).astype(str).astype("U").tobytes())
    return digest.hexdigest()


def write_image_outputs(result: ImageStudyResult, out_dir: Path, train: ImageCohort) -> None:
    """Write ``model/``, ``metrics.json`` and ``report.html`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = result.best
    extra = network_weights(best.estimator)
    metadata = _metadata(result, train)
    result.model_dir = save_model(out_dir / "model", best.estimator, metadata, extra)
    summary = {
        "study": result.title,
        "selected_model": result.best_name,
        "positive_label": None if result.positive_label is None else str(result.positive_label),
        "images": result.n_images,
        "candidates": {
            name: {
                "validation": {k: v.to_dict() for k, v in c.val_metrics.items()},
                "test": {k: v.to_dict() for k, v in c.test_metrics.items()},
                "fit_seconds": round(c.fit_seconds, 2),
                "images_per_second": round(c.images_per_second, 1),
            }
            for name, c in result.candidates.items()
        },
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    result.report_path = out_dir / "report.html"
    result.report_path.write_text(render(result.title, result.sections))
