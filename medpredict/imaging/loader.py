"""Read a column of image references into an image array (the study's ``image`` column kind).

A reference is a file path (PNG/JPEG/BMP/TIFF or DICOM) or ``"<file>.npz#<key>/<index>"``,
one image inside a NumPy archive (e.g. ``breastmnist_28.npz#test_images/5``). Relative
paths resolve from ``root``. Every bad reference is reported together, by reference.

Examples
--------
>>> import pandas as pd
>>> from medpredict.settings import require_data
>>> path = require_data("images/breastmnist_28.npz")
>>> refs = pd.DataFrame({"image": [f"{path}#test_images/{i}" for i in range(3)]})
>>> ImageLoader().fit_transform(refs).shape
(3, 28, 28)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from medpredict.data.errors import DataError
from medpredict.imaging.cohort import ImageDataError, read_image, resize_image
from medpredict.imaging.transforms import as_unit_tensor

NPZ_MARK = ".npz#"


class _Archives:
    """Open ``.npz`` archives once per transform call."""

    def __init__(self) -> None:
        self.open: dict[Path, Any] = {}

    def image(self, path: Path, key: str, index: int) -> np.ndarray:
        if path not in self.open:
            self.open[path] = np.load(path, allow_pickle=False)
        archive = self.open[path]
        if key not in archive.files:
            raise KeyError(f"array {key!r} not in archive (has {', '.join(archive.files)})")
        array = archive[key]
        if not 0 <= index < len(array):
            raise IndexError(f"index {index} outside 0..{len(array) - 1}")
        return array[index]

    def close(self) -> None:
        for archive in self.open.values():
            archive.close()


def _to_unit(image: np.ndarray) -> np.ndarray:
    """One stored image (``(H, W)``, ``(C, H, W)`` or ``(H, W, C)``) as float32 in [0, 1]."""
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[0] not in (1, 3):
        image = np.moveaxis(image[..., :3], -1, 0)
    unit = as_unit_tensor(image[None]).numpy()[0]
    return unit[0] if image.ndim == 2 else unit


class ImageLoader(TransformerMixin, BaseEstimator):
    """Column of image references -> float32 image array in [0, 1].

    Parameters
    ----------
    column : the reference column of a DataFrame input; default: the only column, or
        the only column whose values look like image references.
    root : folder that relative references resolve from (default: working directory).
    size : resize every image to ``size`` x ``size``; without it all images must
        share one shape.
    color : read raster files as RGB ``(3, H, W)`` instead of greyscale.
    window : DICOM window: ``"file"``, ``(center, width)`` or None (image range).

    Attributes
    ----------
    column_ : the column read.
    """

    def __init__(
        self,
        column: str | None = None,
        root: str | None = None,
        size: int | None = None,
        color: bool = False,
        window: tuple[float, float] | str | None = "file",
    ) -> None:
        self.column = column
        self.root = root
        self.size = size
        self.color = color
        self.window = window

    def _pick_column(self, frame: pd.DataFrame) -> str:
        if self.column is not None:
            if self.column not in frame.columns:
                raise DataError(
                    f"image column {self.column!r} not found; columns are {list(frame.columns)}"
                )
            return self.column
        if frame.shape[1] == 1:
            return str(frame.columns[0])
        looks = [
            c for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c]) and frame[c].astype(str).str.contains(
                r"\.(?:npz#|png$|jpe?g$|dcm$|dicom$|bmp$|tiff?$)", case=False, regex=True
            ).all()
        ]
        if len(looks) != 1:
            raise DataError(
                "cannot tell which column holds the image references "
                f"(candidates: {looks or list(frame.columns)}); pass column="
            )
        return str(looks[0])

    def fit(self, X: Any, y: Any = None) -> ImageLoader:
        """Choose the reference column (nothing is learned from the images)."""
        self.column_ = self._pick_column(X) if isinstance(X, pd.DataFrame) else None
        return self

    def _references(self, X: Any) -> list[str]:
        if isinstance(X, pd.DataFrame):
            return X[self.column_ or self._pick_column(X)].astype(str).tolist()
        if isinstance(X, pd.Series):
            return X.astype(str).tolist()
        array = np.asarray(X, dtype=object)
        return [str(v) for v in array.ravel()]

    def _read(self, ref: str, archives: _Archives) -> np.ndarray:
        base = Path(self.root) if self.root else Path.cwd()
        if NPZ_MARK in ref:
            file_part, inner = ref.split(NPZ_MARK, 1)
            path = Path(file_part + ".npz")
            key, _, index = inner.rpartition("/")
            if not key or not index.isdigit():
                raise ValueError("expected '<file>.npz#<key>/<index>'")
            path = path if path.is_absolute() else base / path
            image = _to_unit(archives.image(path, key, int(index)))
            return image if self.size is None else resize_image(image, self.size)
        path = Path(ref)
        path = path if path.is_absolute() else base / path
        return read_image(path, self.size, self.color, self.window)

    def transform(self, X: Any) -> np.ndarray:
        """Read every referenced image; raise once listing each bad reference."""
        if isinstance(X, np.ndarray) and X.dtype != object and X.ndim in (3, 4):
            return X
        refs = self._references(X)
        archives = _Archives()
        problems: dict[str, str] = {}
        images: list[np.ndarray] = []
        try:
            for ref in refs:
                try:
                    images.append(self._read(ref, archives))
                except ImageDataError as err:
                    problems[ref] = "; ".join(err.problems.values())
                except (OSError, ValueError, KeyError, IndexError) as err:
                    problems[ref] = str(err)
        finally:
            archives.close()
        shapes = {im.shape for im in images}
        if not problems and len(shapes) > 1:
            first = images[0].shape
            problems = {
                r: f"wrong size {im.shape}, expected {first}; pass size= to resize"
                for r, im in zip(refs, images, strict=True) if im.shape != first
            }
        if problems:
            raise ImageDataError(problems, "image column")
        if not images:
            return np.zeros((0, 1, 1), dtype=np.float32)
        return np.stack(images).astype(np.float32)
