"""Reference-data lookup order and verified fetching from a local HTTP mirror (127.0.0.1 only)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.data.download import ChecksumError, fetch
from medpredict.data.reference import REFERENCE_DATASETS, dataset_holding
from medpredict.imaging.cohort import load_medmnist
from medpredict.settings import fetched_data_dir, require_data

BREAST = "images/breastmnist_28.npz"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def shared_breast() -> Path:
    """The BreastMNIST copy in the reference-data folder the suite was started with."""
    return require_data(BREAST)


class _Mirror:
    """A real HTTP server on 127.0.0.1 serving ``root``, counting the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                mirror.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_local_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No MEDPREDICT_DATA_DIR, no ../shared/data beside the working directory; a temp cache."""
    work = tmp_path / "clone" / "project"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("MEDPREDICT_DATA_DIR", raising=False)
    monkeypatch.setenv("MEDPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return tmp_path / "cache"


def _serve(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Mirror]:
    mirror = _Mirror(root)
    monkeypatch.setenv("MEDPREDICT_DATA_MIRROR", mirror.url)
    yield mirror
    mirror.close()


@pytest.fixture
def good_mirror(shared_breast, monkeypatch) -> Iterator[_Mirror]:
    """A mirror over the real reference-data folder."""
    yield from _serve(shared_breast.parents[1], monkeypatch)


@pytest.fixture
def corrupt_mirror(shared_breast, tmp_path, monkeypatch) -> Iterator[_Mirror]:
    """A mirror whose BreastMNIST file has one byte flipped (a temp copy)."""
    root = tmp_path / "corrupt"
    (root / "images").mkdir(parents=True)
    data = bytearray(shared_breast.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / BREAST).write_bytes(bytes(data))
    yield from _serve(root, monkeypatch)


def test_fetch_from_mirror_is_stored_and_found(no_local_data, good_mirror, shared_breast):
    with pytest.raises(FileNotFoundError) as missing:
        require_data(BREAST)
    for named in ("MEDPREDICT_DATA_DIR", "../shared/data", str(fetched_data_dir()),
                  "medpredict datasets fetch breastmnist"):
        assert named in str(missing.value)

    result = CliRunner().invoke(app, ["datasets", "fetch", "breastmnist", "--quiet"])
    assert result.exit_code == 0, result.output
    stored = no_local_data / "reference-data" / BREAST
    assert require_data(BREAST) == stored
    assert stored.read_bytes() == shared_breast.read_bytes()
    assert good_mirror.requests == [f"/{BREAST}"]

    fetch(["breastmnist"], quiet=True)
    assert good_mirror.requests == [f"/{BREAST}"], "a found file is not downloaded again"


def test_corrupted_download_is_refused_and_not_cached(no_local_data, corrupt_mirror):
    with pytest.raises(ChecksumError, match=r"images/breastmnist_28\.npz.*sha256.*not stored"):
        fetch(["breastmnist"], quiet=True)
    assert corrupt_mirror.requests == [f"/{BREAST}"]
    leftovers = [p for p in no_local_data.rglob("*") if p.is_file()]
    assert leftovers == []
    with pytest.raises(FileNotFoundError):
        require_data(BREAST)

    result = CliRunner().invoke(app, ["datasets", "fetch", "breastmnist", "--quiet"])
    assert result.exit_code == 2
    assert "breastmnist_28.npz" in result.output and "Traceback" not in result.output


def test_unreachable_source_is_a_named_error(no_local_data, monkeypatch):
    monkeypatch.setenv("MEDPREDICT_DATA_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"could not download images/breastmnist_28\.npz"):
        fetch(["breastmnist"], quiet=True)
    assert not (no_local_data / "reference-data" / BREAST).exists()


def test_lookup_order(no_local_data, tmp_path, monkeypatch):
    """Synthetic one-line files: MEDPREDICT_DATA_DIR, then ../shared/data, then the cache."""
    relative = "text/medical_abstracts_test.csv"
    chosen = tmp_path / "chosen"
    shared = tmp_path / "clone" / "shared" / "data"
    for folder in (chosen, shared, no_local_data / "reference-data"):
        (folder / "text").mkdir(parents=True)
        (folder / relative).write_text(folder.name)
    monkeypatch.setenv("MEDPREDICT_DATA_DIR", str(chosen))
    assert require_data(relative).read_text() == "chosen"
    monkeypatch.delenv("MEDPREDICT_DATA_DIR")
    assert require_data(relative).read_text() == "data"
    shutil.rmtree(shared)
    assert require_data(relative).read_text() == "reference-data"
    monkeypatch.setenv("MEDPREDICT_DATA_DIR", str(tmp_path / "empty"))
    assert require_data(relative).read_text() == "reference-data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="checks the catalogue against ../shared/data")
def test_catalogue_checksums_match_the_mirror_layout():
    for dataset in REFERENCE_DATASETS.values():
        for file in dataset.files:
            data = (SHARED / file.relative).read_bytes()
            assert len(data) == file.mirror.size, file.relative
            assert hashlib.sha256(data).hexdigest() == file.mirror.value, file.relative
    assert dataset_holding("ecg/cpsc2021").name == "cpsc2021"
    assert dataset_holding("survival/whas_train_test.h5").name == "deepsurv"
    assert dataset_holding("text/no_such_file.csv") is None


def test_breastmnist_official_source_and_layout(shared_breast, tmp_path):
    official = REFERENCE_DATASETS["breastmnist"].files[0]
    assert official.url.startswith("https://zenodo.org/records/10519652/files/breastmnist.npz")
    assert (official.official.algorithm, official.official.value) == (
        "md5", "750601b1f35ba3300ea97c75c52ff8f6")
    # The official file keeps labels as (N, 1); rebuild that layout from the real arrays.
    with np.load(shared_breast) as data:
        arrays = {k: data[k].reshape(-1, 1) if k.endswith("_labels") else data[k]
                  for k in data.files}
    np.savez_compressed(tmp_path / "breastmnist.npz", **arrays)
    splits = load_medmnist(tmp_path / "breastmnist.npz")
    assert {k: len(v) for k, v in splits.items()} == {"train": 546, "val": 78, "test": 156}
    assert np.bincount(splits["train"].labels).tolist() == [147, 399]
    assert splits["train"].positive_label == load_medmnist(shared_breast)["train"].positive_label


def test_bare_datasets_still_lists(no_local_data):
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    assert "pima_tr" in result.output and "breastmnist" in result.output
    assert "0/1 files" in result.output
