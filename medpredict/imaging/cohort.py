"""Image cohorts: PNG/JPEG or DICOM files with a labels CSV, and MedMNIST ``.npz`` files.

Every loader returns :class:`ImageCohort` objects (images, labels, patient ids and a
reference per image saying where it came from). Files that cannot be used (corrupt,
unreadable DICOM, multi-frame DICOM, wrong size, missing) are never skipped: the
loader reads every file, then raises one :class:`ImageDataError` listing each bad path
and what was wrong with it.

DICOM pixel data go through the modality transform (``RescaleSlope`` /
``RescaleIntercept``), then a window (the file's ``WindowCenter``/``WindowWidth``, a
window you give, or the image's range) maps values to [0, 1]; ``MONOCHROME1`` images
are inverted so that higher values are always brighter.

Examples
--------
>>> from medpredict.settings import require_data
>>> splits = load_medmnist(require_data("images/breastmnist_28.npz"))
>>> len(splits["train"]), splits["train"].class_names[0]
(546, 'malignant')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medpredict.data.errors import DataError
from medpredict.imaging.transforms import resize

DICOM_SUFFIXES = (".dcm", ".dicom")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Label names of MedMNIST datasets (labels are integers in the .npz files).
MEDMNIST_LABELS = {
    "breastmnist": ({0: "malignant", 1: "normal, benign"}, 0),
    "pneumoniamnist": ({0: "normal", 1: "pneumonia"}, 1),
}


class ImageDataError(DataError):
    """Image files that cannot be used; ``problems`` maps each path to what is wrong."""

    def __init__(self, problems: dict[str, str], context: str = "") -> None:
        self.problems = dict(problems)
        listed = "; ".join(f"{path}: {why}" for path, why in list(self.problems.items())[:20])
        more = f"; and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        where = f" in {context}" if context else ""
        super().__init__(f"{len(self.problems)} unusable image file(s){where}: {listed}{more}")


@dataclass
class ImageCohort:
    """Images with their labels, patient ids and source references.

    Attributes
    ----------
    images : ``(N, H, W)`` or ``(N, C, H, W)`` array, ``uint8`` or float in [0, 1].
    labels : ``(N,)`` class labels.
    refs : where each image came from (a file path, or ``file.npz#key/index``).
    patient_ids : ``(N,)`` patient identifiers, or None when each image is its own patient.
    class_names : display name per label.
    positive_label : the label that counts as the event (e.g. malignant), for binary tasks.
    """

    images: np.ndarray
    labels: np.ndarray
    refs: list[str]
    patient_ids: np.ndarray | None = None
    class_names: dict[Any, str] = field(default_factory=dict)
    positive_label: Any = None

    def __post_init__(self) -> None:
        n = len(self.images)
        sizes = {"labels": len(self.labels), "refs": len(self.refs)}
        if self.patient_ids is not None:
            sizes["patient_ids"] = len(self.patient_ids)
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise DataError(f"image cohort has {n} images but {wrong}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def groups(self) -> np.ndarray:
        """Patient id per image (the image reference where no patient id is known)."""
        return self.patient_ids if self.patient_ids is not None else np.asarray(self.refs)

    def subset(self, rows: Sequence[int] | np.ndarray) -> ImageCohort:
        """The cohort restricted to ``rows`` (positions)."""
        rows = np.asarray(rows)
        return replace(
            self,
            images=self.images[rows],
            labels=self.labels[rows],
            refs=[self.refs[i] for i in rows],
            patient_ids=None if self.patient_ids is None else self.patient_ids[rows],
        )

    def frame(self, column: str = "image") -> pd.DataFrame:
        """A study table: the image reference column, ``label`` and ``patient_id``."""
        out = pd.DataFrame({column: self.refs, "label": self.labels})
        if self.patient_ids is not None:
            out["patient_id"] = self.patient_ids
        return out


def window_image(
    values: np.ndarray, center: float | None = None, width: float | None = None
) -> np.ndarray:
    """Map ``values`` to [0, 1] through a linear window (the image range when not given)."""
    values = values.astype(np.float32)
    if center is None or width is None or width <= 0:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = center - width / 2.0, center + width / 2.0
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _first(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        value = next(iter(value))
    return float(value)


def read_dicom(
    path: str | Path, window: tuple[float, float] | str | None = "file"
) -> np.ndarray:
    """Read one single-frame DICOM image as float32 in [0, 1], shape ``(H, W)`` or ``(3, H, W)``.

    Parameters
    ----------
    path : DICOM file.
    window : ``"file"`` uses the file's first WindowCenter/WindowWidth (the image range
        if it has none); ``(center, width)`` in modality units (e.g. HU) sets one;
        None uses the image range.

    Raises
    ------
    ImageDataError
        Naming the path: not DICOM, no or unreadable pixel data, multi-frame, or an
        unsupported photometric interpretation.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> image = read_dicom(get_testdata_file("CT_small.dcm"), window=(40, 400))
    >>> image.shape, float(image.min()) >= 0.0, float(image.max()) <= 1.0
    ((128, 128), True, True)
    """
    import pydicom

    key = str(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # pydicom raises many types for a bad file
        raise ImageDataError({key: f"not a readable DICOM file ({err})"}) from err
    if "PixelData" not in ds:
        raise ImageDataError({key: "DICOM file has no pixel data"})
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageDataError(
            {key: f"multi-frame DICOM ({frames} frames) is not supported; "
                  "export the frame to use as a single-frame file"}
        )
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ImageDataError(
            {key: f"photometric interpretation {photometric or 'missing'} is not supported; "
                  "expected MONOCHROME1, MONOCHROME2 or RGB"}
        )
    try:
        pixels = ds.pixel_array
    except Exception as err:  # truncated data, missing decoder, ...
        raise ImageDataError({key: f"cannot decode pixel data ({err})"}) from err
    if photometric == "RGB":
        return np.moveaxis(pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max), -1, 0)
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    values = pixels.astype(np.float32) * slope + intercept
    if window == "file":
        image = window_image(values, _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth")))
    elif window is None:
        image = window_image(values)
    elif isinstance(window, str):
        raise ValueError(f"window must be 'file', None or (center, width); got {window!r}")
    else:
        image = window_image(values, float(window[0]), float(window[1]))
    return 1.0 - image if photometric == "MONOCHROME1" else image


def read_raster(path: str | Path, color: bool = False) -> np.ndarray:
    """Read a PNG/JPEG/BMP/TIFF as float32 in [0, 1]: ``(H, W)``, or ``(3, H, W)`` if ``color``.

    Raises
    ------
    ImageDataError
        Naming the path when the file is missing or not a decodable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            handle.load()
            image = handle.convert("RGB" if color else "L")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ImageDataError({str(path): f"not a readable image ({err})"}) from err
    array = np.asarray(image, dtype=np.float32) / 255.0
    return np.moveaxis(array, -1, 0) if color else array


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one ``(H, W)`` or ``(C, H, W)`` image in [0, 1] to ``size`` x ``size``."""
    x = torch.from_numpy(image[None] if image.ndim == 3 else image[None, None])
    out = resize(x, size)[0].numpy()
    return np.clip(out if image.ndim == 3 else out[0], 0.0, 1.0)


def read_image(
    path: str | Path,
    size: int | None = None,
    color: bool = False,
    window: tuple[float, float] | str | None = "file",
) -> np.ndarray:
    """Read a DICOM or raster image file (by suffix) as float32 in [0, 1], resized if asked."""
    path = Path(path)
    if not path.is_file():
        raise ImageDataError({str(path): "file does not exist"})
    if path.suffix.lower() in DICOM_SUFFIXES:
        image = read_dicom(path, window)
        if image.ndim == 3 and not color:
            image = image.mean(axis=0)
    elif path.suffix.lower() in RASTER_SUFFIXES:
        image = read_raster(path, color)
    else:
        expected = ", ".join(DICOM_SUFFIXES + RASTER_SUFFIXES)
        raise ImageDataError({str(path): f"unknown image type; expected one of {expected}"})
    if color and image.ndim == 2:
        image = np.repeat(image[None], 3, axis=0)
    return resize_image(image, size) if size is not None else image


def read_images(
    paths: Sequence[str | Path],
    size: int | None = None,
    color: bool = False,
    window: tuple[float, float] | str | None = "file",
    context: str = "",
) -> np.ndarray:
    """Read every file into one float32 array; raise once, listing every bad file.

    Without ``size`` all images must share the first image's shape; others are
    reported as "wrong size".
    """
    problems: dict[str, str] = {}
    images: list[np.ndarray] = []
    shape = None
    for path in paths:
        try:
            image = read_image(path, size, color, window)
        except ImageDataError as err:
            problems.update(err.problems)
            continue
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            problems[str(path)] = (
                f"wrong size {image.shape}, expected {shape} like the first image; "
                "pass size= to resize every image"
            )
            continue
        images.append(image)
    if problems:
        raise ImageDataError(problems, context)
    if not images:
        raise DataError(f"no images to read{f' in {context}' if context else ''}")
    return np.stack(images).astype(np.float32)


def check_labels_table(
    table: pd.DataFrame,
    path_column: str = "path",
    label_column: str = "label",
    source: str | Path = "labels CSV",
) -> None:
    """Refuse a labels table without its path and label columns, or with rows lacking either.

    Rows are named by their line in the CSV file (the header is line 1).

    Examples
    --------
    >>> labels = pd.DataFrame({"path": ["a.png", None], "label": [1, 0]})
    >>> check_labels_table(labels, source="labels.csv")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: labels.csv: rows 3 have no 'path' or 'label'
    """
    missing = [c for c in (path_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(f"{source} lacks column(s) {missing}; found {list(table.columns)}")
    empty = table.index[table[path_column].isna() | table[label_column].isna()]
    if len(empty):
        rows = ", ".join(str(i + 2) for i in empty[:10])
        raise DataError(f"{source}: rows {rows} have no {path_column!r} or {label_column!r}")


def load_image_folder(
    labels_csv: str | Path,
    path_column: str = "path",
    label_column: str = "label",
    patient_column: str | None = "patient_id",
    size: int | None = None,
    color: bool = False,
    window: tuple[float, float] | str | None = "file",
    positive_label: Any = None,
) -> ImageCohort:
    """Load images listed in a CSV (path, label, patient id); DICOM or PNG/JPEG by suffix.

    Relative paths are resolved from the CSV's folder. ``patient_column`` may be None
    or absent from the CSV when each image is its own patient.

    Raises
    ------
    DataError
        A required column is missing or a row has no path/label (naming the rows).
    ImageDataError
        Listing every file that is missing, unreadable or of the wrong size.
    """
    labels_csv = Path(labels_csv)
    table = pd.read_csv(labels_csv)
    check_labels_table(table, path_column, label_column, labels_csv)
    base = labels_csv.parent
    paths = [p if Path(p).is_absolute() else base / p for p in table[path_column].astype(str)]
    images = read_images(paths, size, color, window, context=str(labels_csv))
    patients = None
    if patient_column is not None and patient_column in table.columns:
        patients = table[patient_column].astype(str).to_numpy()
    labels = table[label_column].to_numpy()
    return ImageCohort(
        images=images,
        labels=labels,
        refs=[str(p) for p in paths],
        patient_ids=patients,
        class_names={c: str(c) for c in np.unique(labels)},
        positive_label=positive_label,
    )


def check_medmnist_split(
    data: Mapping[str, np.ndarray], split: str, path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels from a MedMNIST archive, refusing a malformed one.

    Parameters
    ----------
    data : the archive's arrays by name (an open ``.npz`` file).
    split : ``"train"``, ``"val"`` or ``"test"``.
    path : the archive, named in the message.

    Returns
    -------
    images : ``(N, H, W)`` or ``(N, H, W, C)`` as stored.
    labels : ``(N,)`` (a ``(N, 1)`` column is flattened).

    Raises
    ------
    ImageDataError
        Naming the archive: a split's array is missing, the labels are multi-label,
        images and labels do not match, or the images are 3-D volumes.

    Examples
    --------
    >>> labels = np.zeros((4, 2))
    >>> check_medmnist_split({"train_images": np.zeros((4, 28, 28)), "train_labels": labels},
    ...                      "train", "two_labels.npz")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.imaging.cohort.ImageDataError: 1 unusable image file(s): two_labels.npz:
    train_labels has shape (4, 2); only single-label tasks are supported
    """
    keys = (f"{split}_images", f"{split}_labels")
    absent = [k for k in keys if k not in data]
    if absent:
        raise ImageDataError(
            {str(path): f"missing array(s) {absent}; MedMNIST files hold "
                        "train/val/test _images and _labels"}
        )
    images, labels = data[keys[0]], data[keys[1]]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ImageDataError(
            {str(path): f"{keys[1]} has shape {labels.shape}; only single-label "
                        "tasks are supported"}
        )
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise ImageDataError(
            {str(path): f"{keys[0]} has shape {images.shape} for {len(labels)} labels; "
                        "expected (N, H, W) or (N, H, W, C)"}
        )
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
        raise ImageDataError(
            {str(path): f"{keys[0]} has shape {images.shape}: a last axis of "
                        f"{images.shape[-1]} is not 1, 3 or 4 colour channels, so these are "
                        "3-D volumes (N, D, H, W), e.g. a MedMNIST 3-D file; volumes are not "
                        "supported yet and are not read as 2-D images"}
        )
    return images, labels


def load_medmnist(
    path: str | Path,
    class_names: dict[Any, str] | None = None,
    positive_label: Any = None,
) -> dict[str, ImageCohort]:
    """Load a MedMNIST-format ``.npz`` into its official ``train``/``val``/``test`` splits.

    Labels of shape ``(N,)`` or ``(N, 1)`` are accepted; multi-label files are refused.
    Known datasets (BreastMNIST, PneumoniaMNIST, by file name) get their label names and
    clinical positive class: BreastMNIST label 0 = malignant is the event, 1 = normal or
    benign. Each image's reference is ``"<path>#<split>_images/<index>"``.

    The files themselves come from the MedMNIST v2 release (Yang et al., 2023,
    https://medmnist.com, CC BY 4.0), e.g. ``pip install medmnist`` then
    ``medmnist.BreastMNIST(split="train", download=True)``.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ImageDataError({str(path): f"not a readable .npz file ({err})"}) from err
    known = next((v for k, v in MEDMNIST_LABELS.items() if path.name.lower().startswith(k)), None)
    if class_names is None and known is not None:
        class_names = known[0]
    if positive_label is None and known is not None:
        positive_label = known[1]
    out = {}
    with data:
        for split in ("train", "val", "test"):
            images, labels = check_medmnist_split(data, split, path)
            if images.ndim == 4:
                images = np.moveaxis(images, -1, 1)
            names = class_names or {int(c): str(c) for c in np.unique(labels)}
            out[split] = ImageCohort(
                images=images,
                labels=labels.astype(np.int64),
                refs=[f"{path}#{split}_images/{i}" for i in range(len(labels))],
                class_names=dict(names),
                positive_label=positive_label,
            )
    return out
