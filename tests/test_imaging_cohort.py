"""Image cohorts: BreastMNIST, image folders with a labels CSV, DICOM, image references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medpredict.data.errors import DataError
from medpredict.imaging.cohort import (
    ImageDataError,
    load_image_folder,
    load_medmnist,
    read_dicom,
    window_image,
)
from medpredict.imaging.loader import ImageLoader
from medpredict.settings import require_data

BREAST = "images/breastmnist_28.npz"


@pytest.fixture(scope="module")
def breast():
    return load_medmnist(require_data(BREAST))


def test_medmnist_official_splits_and_convention(breast):
    assert {k: len(v) for k, v in breast.items()} == {"train": 546, "val": 78, "test": 156}
    train = breast["train"]
    assert train.images.shape == (546, 28, 28) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [147, 399]
    assert train.positive_label == 0 and train.class_names[0] == "malignant"
    assert train.refs[5].endswith("breastmnist_28.npz#train_images/5")


def test_medmnist_refuses_multilabel_and_missing_split(tmp_path):
    """Synthetic .npz files (edge cases): multi-label labels and a missing split."""
    images = np.zeros((4, 8, 8), np.uint8)
    arrays = {f"{s}_images": images for s in ("train", "val", "test")}
    multi = {**arrays, **{f"{s}_labels": np.zeros((4, 3)) for s in ("train", "val", "test")}}
    np.savez(tmp_path / "multi.npz", **multi)
    with pytest.raises(ImageDataError, match="only single-label"):
        load_medmnist(tmp_path / "multi.npz")
    np.savez(tmp_path / "partial.npz", train_images=images, train_labels=np.zeros(4))
    with pytest.raises(ImageDataError, match=r"partial\.npz.*missing array"):
        load_medmnist(tmp_path / "partial.npz")


def test_medmnist_3d_volumes_are_refused_not_read_as_channels(tmp_path):
    """A synthetic file in the MedMNIST 3-D layout (N x 28 x 28 x 28), and a colour one."""
    volumes = np.random.default_rng(0).integers(0, 255, (6, 28, 28, 28), dtype=np.uint8)
    splits = ("train", "val", "test")
    np.savez(tmp_path / "organmnist3d.npz", **{f"{s}_images": volumes for s in splits},
             **{f"{s}_labels": np.arange(6)[:, None] % 2 for s in splits})
    with pytest.raises(ImageDataError, match=r"organmnist3d\.npz: train_images has shape "
                                             r"\(6, 28, 28, 28\).*3-D volumes"):
        load_medmnist(tmp_path / "organmnist3d.npz")
    colour = volumes[..., :3]
    np.savez(tmp_path / "colour.npz", **{f"{s}_images": colour for s in splits},
             **{f"{s}_labels": np.arange(6) % 2 for s in splits})
    assert load_medmnist(tmp_path / "colour.npz")["train"].images.shape == (6, 3, 28, 28)


def _write_pngs(folder, images, names):
    for image, name in zip(images, names, strict=True):
        Image.fromarray(image).save(folder / name)


def test_image_folder_matches_source_pixels(tmp_path, breast):
    """Real BreastMNIST test images written as PNG files, listed in a labels CSV."""
    test = breast["test"].subset(range(12))
    names = [f"img{i}.png" for i in range(12)]
    _write_pngs(tmp_path, test.images, names)
    pd.DataFrame(
        {"path": names, "label": test.labels, "patient_id": [f"p{i // 2}" for i in range(12)]}
    ).to_csv(tmp_path / "labels.csv", index=False)
    cohort = load_image_folder(tmp_path / "labels.csv")
    np.testing.assert_allclose(cohort.images, test.images / 255.0, atol=1e-6)
    assert cohort.labels.tolist() == test.labels.tolist()
    assert cohort.patient_ids[:4].tolist() == ["p0", "p0", "p1", "p1"]


def test_image_folder_reports_every_bad_file(tmp_path, breast):
    """Synthetic bad files: a corrupt PNG, a missing file and a wrong-size image.

    None may be skipped: the error lists each path with the reason.
    """
    _write_pngs(tmp_path, breast["test"].images[:2], ["a.png", "b.png"])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "big.png")
    pd.DataFrame(
        {"path": ["a.png", "corrupt.png", "gone.png", "big.png", "b.png"], "label": [0, 1, 0, 1, 1]}
    ).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ImageDataError) as info:
        load_image_folder(tmp_path / "labels.csv")
    problems = {k.rsplit("/", 1)[-1]: v for k, v in info.value.problems.items()}
    assert set(problems) == {"corrupt.png", "gone.png", "big.png"}
    assert "not a readable image" in problems["corrupt.png"]
    assert "does not exist" in problems["gone.png"]
    assert "wrong size" in problems["big.png"]
    resized = pd.DataFrame({"path": ["a.png", "big.png"], "label": [0, 1]})
    resized.to_csv(tmp_path / "ok.csv", index=False)
    assert load_image_folder(tmp_path / "ok.csv", size=32).images.shape == (2, 32, 32)


def test_image_folder_names_missing_columns_and_rows(tmp_path):
    pd.DataFrame({"file": ["a.png"], "label": [1]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match=r"lacks column.*'path'"):
        load_image_folder(tmp_path / "x.csv")
    pd.DataFrame({"path": ["a.png", None], "label": [1, 0]}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(DataError, match="rows 3 have no"):
        load_image_folder(tmp_path / "y.csv")


def test_ct_dicom_rescale_and_window():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = read_dicom(path, window=(40, 400))
    expected = np.clip((hu - (40 - 200)) / 400, 0, 1)
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert float(ds.RescaleIntercept) == -1024.0
    # without a window in the file, the image range is used
    full = read_dicom(path)
    assert full.min() == 0.0 and full.max() == 1.0


def test_mr_dicom_uses_file_window():
    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    expected = window_image(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth))
    assert image.shape == (64, 64)
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    """pydicom bundles no MONOCHROME1 image: MR_small relabelled as MONOCHROME1 (synthetic)."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    normal = read_dicom(get_testdata_file("MR_small.dcm"), window=None)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    np.testing.assert_allclose(read_dicom(tmp_path / "mono1.dcm", window=None), 1.0 - normal)


def test_multiframe_dicom_is_refused_by_path():
    path = get_testdata_file("rtdose.dcm")
    with pytest.raises(ImageDataError, match=r"rtdose\.dcm: multi-frame DICOM \(15 frames\)"):
        read_dicom(path)


def test_truncated_dicom_is_reported_by_path():
    path = get_testdata_file("MR_truncated.dcm")
    with pytest.raises(ImageDataError, match=r"MR_truncated\.dcm: cannot decode pixel data"):
        read_dicom(path)


def test_dicom_cohort_lists_every_unusable_file(tmp_path):
    """A labels CSV over bundled DICOM files; the bad ones are listed together, by path."""
    rows = [
        (get_testdata_file("CT_small.dcm"), 1),
        (get_testdata_file("rtdose.dcm"), 0),
        (get_testdata_file("MR_truncated.dcm"), 0),
    ]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(tmp_path / "dicom.csv", index=False)
    with pytest.raises(ImageDataError) as info:
        load_image_folder(tmp_path / "dicom.csv", size=64)
    assert sorted(k.rsplit("/", 1)[-1] for k in info.value.problems) == [
        "MR_truncated.dcm", "rtdose.dcm",
    ]
    good = pd.DataFrame(
        [(get_testdata_file("CT_small.dcm"), 1), (get_testdata_file("MR_small.dcm"), 0)],
        columns=["path", "label"],
    )
    good.to_csv(tmp_path / "good.csv", index=False)
    cohort = load_image_folder(tmp_path / "good.csv", size=64)
    assert cohort.images.shape == (2, 64, 64) and cohort.patient_ids is None


def test_image_loader_reads_npz_references_and_files(tmp_path, breast):
    path = require_data(BREAST)
    refs = pd.DataFrame({"age": [50, 60], "image": [f"{path}#val_images/{i}" for i in (3, 7)]})
    loaded = ImageLoader().fit(refs).transform(refs)
    np.testing.assert_allclose(loaded, breast["val"].images[[3, 7]] / 255.0, atol=1e-6)
    Image.fromarray(breast["val"].images[3]).save(tmp_path / "v3.png")
    mixed = pd.Series(["v3.png", f"{path}#val_images/3"])
    both = ImageLoader(root=str(tmp_path)).fit(mixed).transform(mixed)
    np.testing.assert_allclose(both[0], both[1], atol=1e-6)


def test_image_loader_reports_each_bad_reference(tmp_path):
    path = require_data(BREAST)
    refs = pd.Series(
        [f"{path}#val_images/1", f"{path}#val_images/999", f"{path}#nope/1", "missing.png"]
    )
    with pytest.raises(ImageDataError) as info:
        ImageLoader(root=str(tmp_path)).fit(refs).transform(refs)
    problems = info.value.problems
    assert set(problems) == set(refs[1:])
    assert "index 999 outside" in problems[refs[1]]
    assert "'nope' not in archive" in problems[refs[2]]
