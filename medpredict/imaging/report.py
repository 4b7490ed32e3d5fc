"""Report sections of studies with an image column: Grad-CAM of the final model.

The study report calls :func:`image_sections` for every study with a feature of kind
``image`` (registered in :mod:`medpredict.study.report`), with the first hold-out's rows
(the fixed scheme's test rows, a temporal or external hold-out).

Examples
--------
>>> from sklearn.dummy import DummyClassifier
>>> X, y = pd.DataFrame({"image": ["a.png", "b.png"]}), np.array([0, 1])
>>> model = DummyClassifier().fit(X, y)
>>> (section,) = image_sections(model, "dummy", X, y, ["no", "yes"], ["image"], "test", seed=0)
>>> section.title, "needs a model that reads the images itself" in section.body
('Grad-CAM of dummy (test images)', True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from medpredict.imaging.gradcam import gradcam_section
from medpredict.imaging.loader import ImageLoader
from medpredict.report.html import Section, callout

GRADCAM_SAMPLES = 4


def image_sections(
    model: Any,
    name: str,
    X: pd.DataFrame,
    y: np.ndarray,
    classes: list[Any],
    columns: list[str],
    where: str,
    seed: int,
    n_each: int = GRADCAM_SAMPLES,
) -> list[Section]:
    """Grad-CAM overlays of ``model`` on correct and wrong predictions of held-out images.

    Parameters
    ----------
    model : the study's final model; Grad-CAM needs one that reads the images itself
        (an :class:`ImageLoader` first, then a network, a probe with a linear head, or
        an average of those).
    name : the model's candidate name.
    X : the hold-out's feature table (image references).
    y : class index of each row; ``classes`` names them.
    columns : the study's image columns.
    where : the hold-out's kind, e.g. ``"test"``.
    seed : seed of the sample of images shown.
    n_each : correct and wrong predictions shown (each).
    """
    title = f"Grad-CAM of {name} ({where} images)"
    steps = model.steps if isinstance(model, Pipeline) else []
    if not steps or not isinstance(steps[0][1], ImageLoader):
        return [
            Section(
                title,
                callout(
                    f"Grad-CAM needs a model that reads the images itself; {name} uses "
                    f"features of the image column(s) {', '.join(columns)} inside its "
                    "preprocessing. Image models such as probe, finetune or cnn show "
                    "Grad-CAM overlays here.",
                    "note",
                ),
            )
        ]
    images = steps[0][1].transform(X)
    rest = model[1:]
    network = rest.steps[0][1] if len(rest.steps) == 1 else rest
    names = {i: str(label) for i, label in enumerate(classes)}
    return [gradcam_section(network, images, y, names, n_each=n_each, seed=seed, title=title)]
