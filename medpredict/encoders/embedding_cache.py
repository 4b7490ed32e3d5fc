"""On-disk cache of embeddings keyed by the SHA-256 of each input text.

Embeddings live under ``cache_dir()/embeddings/<namespace>/`` as safetensors shards
(``keys``: uint8 ``(n, 32)`` text hashes, ``embeddings``: float32 ``(n, d)``). The
namespace identifies the encoder (model weights and settings), so a different model
never reads another model's vectors. Nothing executable is stored, shards are
written to a temporary name and renamed, and the texts themselves are never saved.

Examples
--------
>>> import numpy as np, tempfile
>>> from pathlib import Path
>>> cache = EmbeddingCache("demo", root=Path(tempfile.mkdtemp()))
>>> keys = text_keys(["chest pain", "fever"])
>>> cache.put(keys, np.ones((2, 3), dtype=np.float32))
>>> found, vectors = cache.get(keys + text_keys(["cough"]))
>>> found.tolist()
[True, True, False]
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from medpredict.settings import cache_dir

KEY_BYTES = 32
_OPEN: dict[Path, EmbeddingCache] = {}


def text_keys(texts: list[str]) -> list[bytes]:
    """SHA-256 digest of each text's UTF-8 encoding."""
    return [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]


class EmbeddingCache:
    """Embeddings of texts already seen by one encoder.

    Parameters
    ----------
    namespace : str
        Identifier of the encoder (weights and settings); one folder per namespace.
    root : Path, optional
        Folder holding the cache; defaults to ``cache_dir() / "embeddings"``.
    """

    def __init__(self, namespace: str, root: Path | None = None) -> None:
        self.folder = (root or cache_dir() / "embeddings") / namespace
        self._index: dict[bytes, np.ndarray] = {}
        self._loaded: set[str] = set()

    @classmethod
    def open(cls, namespace: str, root: Path | None = None) -> EmbeddingCache:
        """The process-wide cache object for ``namespace`` (shards are read once)."""
        folder = (root or cache_dir() / "embeddings") / namespace
        if folder not in _OPEN:
            _OPEN[folder] = cls(namespace, root)
        return _OPEN[folder]

    def _refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("*.safetensors")):
            if shard.name in self._loaded:
                continue
            tensors = load_file(shard)
            keys, vectors = tensors["keys"], tensors["embeddings"]
            if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or len(keys) != len(vectors):
                raise ValueError(f"embedding cache shard {shard} is malformed; delete it")
            for key, vector in zip(keys, vectors, strict=True):
                self._index[key.tobytes()] = vector
            self._loaded.add(shard.name)

    def get(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Look up ``keys``.

        Returns
        -------
        found : bool array, one per key.
        vectors : float32 ``(n, d)`` with rows of missing keys set to zero, or None
            when nothing was found.
        """
        self._refresh()
        found = np.array([key in self._index for key in keys], dtype=bool)
        if not found.any():
            return found, None
        dim = next(self._index[k] for k, hit in zip(keys, found, strict=True) if hit).shape[0]
        vectors = np.zeros((len(keys), dim), dtype=np.float32)
        for i in np.flatnonzero(found):
            vectors[i] = self._index[keys[i]]
        return found, vectors

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per key) as a new shard."""
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"expected {len(keys)} embedding rows, got shape {vectors.shape}")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        save_file({"keys": key_array.copy(), "embeddings": vectors}, tmp)
        os.replace(tmp, self.folder / name)
        for key, vector in zip(keys, vectors, strict=True):
            self._index[key] = vector
        self._loaded.add(name)

    def __len__(self) -> int:
        self._refresh()
        return len(self._index)


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def weights_fingerprint(folder: Path) -> str:
    """SHA-256 over the model folder's weight files (memoised by size and mtime)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".safetensors", ".bin", ".pt", ".onnx") or not path.is_file():
            continue
        stat = path.stat()
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in _FINGERPRINTS:
            file_digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    file_digest.update(block)
            _FINGERPRINTS[memo] = file_digest.hexdigest()
        digest.update(path.relative_to(folder).as_posix().encode() + _FINGERPRINTS[memo].encode())
    return digest.hexdigest()
