"""Download reference datasets, verify each file's checksum, store it in the cache atomically.

Files come from their original source, or from ``<MEDPREDICT_DATA_MIRROR>/<relative path>``
when a mirror is set (then checked against the mirror layout's sha256). A download is
written to a temporary file beside its destination and renamed into place only after its
size and checksum match, so a partial or corrupted download never becomes a cached file.

Examples
--------
>>> fetch(["breastmnist"], quiet=True)  # doctest: +SKIP
[PosixPath('/home/user/.cache/medpredict/reference-data/images/breastmnist_28.npz')]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from medpredict.data.errors import DataError
from medpredict.data.reference import Digest, ReferenceFile, reference_dataset
from medpredict.settings import data_mirror, fetched_data_dir, find_data

_CHUNK = 1 << 16
_TIMEOUT_S = 60


class ChecksumError(DataError):
    """A downloaded file does not match its recorded size or checksum; it was not stored."""


def source(file: ReferenceFile, mirror: str | None) -> tuple[str, Digest]:
    """The URL to download ``file`` from and the digest it must match."""
    if mirror is None:
        return file.url, file.official
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(file.relative)}", file.mirror


def download(
    file: ReferenceFile,
    destination: Path,
    mirror: str | None = None,
    advance: Callable[[int], None] | None = None,
) -> Path:
    """Download ``file`` to ``destination`` if its size and checksum match.

    Raises
    ------
    ChecksumError
        The download differs from the recorded size or checksum (nothing is stored).
    DataError
        The source could not be reached.
    """
    url, expected = source(file, mirror)
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(expected.algorithm)
    handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        received = 0
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response,
        ):
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if expected.size is not None and received > expected.size:
                    raise ChecksumError(
                        f"{file.relative}: {url} sent more than the expected "
                        f"{expected.size} bytes; the file was not stored"
                    )
                digest.update(chunk)
                out.write(chunk)
                if advance is not None:
                    advance(len(chunk))
        if expected.size is not None and received != expected.size:
            raise ChecksumError(
                f"{file.relative}: {url} sent {received} bytes, expected {expected.size}; "
                "the file was not stored"
            )
        if digest.hexdigest() != expected.value:
            raise ChecksumError(
                f"{file.relative}: {url} has {expected.algorithm} {digest.hexdigest()}, "
                f"expected {expected.value}; the file was not stored"
            )
        os.replace(partial, destination)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"could not download {file.relative} from {url} ({reason}); check the network "
            "or set MEDPREDICT_DATA_MIRROR to a mirror with the same layout"
        ) from err
    finally:
        Path(partial).unlink(missing_ok=True)
    return destination


def fetch(names: Iterable[str], quiet: bool = False) -> list[Path]:
    """Make every file of the reference datasets ``names`` available; return their paths.

    Files already found by :func:`medpredict.settings.find_data` (``MEDPREDICT_DATA_DIR``,
    ``../shared/data`` or the cache) are not downloaded again; the others are downloaded,
    verified and stored under :func:`medpredict.settings.fetched_data_dir`.

    Parameters
    ----------
    names : iterable of str
        Reference dataset names (see :data:`medpredict.data.reference.REFERENCE_DATASETS`).
    quiet : bool
        No progress bar.
    """
    datasets = [reference_dataset(name) for name in names]
    mirror = data_mirror()
    paths, missing = [], []
    for dataset in datasets:
        for file in dataset.files:
            found = find_data(file.relative)
            if found is None:
                missing.append(file)
            paths.append(found or fetched_data_dir() / file.relative)
    sizes = [source(f, mirror)[1].size for f in missing]
    total = None if None in sizes else sum(s or 0 for s in sizes)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet or not missing,
    )
    with progress:
        task = progress.add_task(f"reference data ({len(missing)} files)", total=total)
        for file in missing:
            progress.update(task, description=file.relative)
            download(file, fetched_data_dir() / file.relative, mirror,
                     lambda n: progress.advance(task, n))
    return paths
