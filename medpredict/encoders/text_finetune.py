"""Optional fine-tuning of the sentence encoder on the training fold's labelled texts.

:class:`FineTunedSentenceEncoder` is a supervised transformer: ``fit(X, y)`` trains
the encoder with a linear classification head (cross-entropy, AdamW) on the rows it
is given, so inside cross-validation each fold fine-tunes on its own training rows
only. The tuned weights are saved as a sentence-transformers folder (safetensors)
under ``cache_dir()/finetuned/<hash>`` (the hash covers the base weights, the
training texts and labels and the settings, so an identical fit reuses them); the
embeddings then come from a :class:`~medpredict.encoders.text.SentenceEncoder` over
that folder. Fine-tuning is slow on CPU: a few hundred short texts per minute.

Examples
--------
>>> from medpredict.encoders.text import load_medical_abstracts
>>> corpus = load_medical_abstracts().groupby("label").head(2)
>>> enc = FineTunedSentenceEncoder(max_seq_length=32, show_progress=False)
>>> enc.fit_transform(corpus[["text"]], corpus["label"]).shape
(10, 384)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError
from medpredict.encoders.embedding_cache import text_keys, weights_fingerprint
from medpredict.encoders.text import SentenceEncoder, TextJoiner, resolve_model
from medpredict.settings import cache_dir


class FineTunedSentenceEncoder(TransformerMixin, BaseEstimator):
    """Fine-tune a sentence encoder on labelled texts, then embed with it.

    Parameters
    ----------
    model : str, optional
        Base model folder (None: the bundled all-MiniLM-L6-v2).
    epochs : int
        Passes over the training texts.
    batch_size : int
        Texts per optimisation step.
    learning_rate : float
        AdamW learning rate of the encoder and head.
    max_seq_length : int
        Token limit while training and embedding.
    seed : int
        Seed of the head initialisation and batch order.
    show_progress : bool
        Progress bar while embedding.

    Attributes
    ----------
    model_path_ : str
        Folder holding the fine-tuned weights.
    encoder_ : SentenceEncoder
        The fitted encoder over ``model_path_``.
    """

    def __init__(self, model: str | None = None, epochs: int = 1, batch_size: int = 16,
                 learning_rate: float = 2e-5, max_seq_length: int = 128, seed: int = 0,
                 show_progress: bool = True) -> None:
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_seq_length = max_seq_length
        self.seed = seed
        self.show_progress = show_progress

    def _target_folder(self, base: str, texts: list[str], labels: np.ndarray) -> Path:
        digest = hashlib.sha256()
        identity = weights_fingerprint(Path(base)) if Path(base).is_dir() else base
        settings = {k: v for k, v in self.get_params().items() if k != "show_progress"}
        digest.update(json.dumps({"base": identity, **settings}, sort_keys=True,
                                 default=str).encode())
        for key in text_keys(texts):
            digest.update(key)
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        return cache_dir() / "finetuned" / digest.hexdigest()[:24]

    def _train(self, base: str, texts: list[str], labels: np.ndarray, folder: Path) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.manual_seed(self.seed)
        encoder = SentenceTransformer(base, device="cpu")
        encoder.max_seq_length = self.max_seq_length
        head = torch.nn.Linear(encoder.get_embedding_dimension(), int(labels.max()) + 1)
        params = list(encoder.parameters()) + list(head.parameters())
        optimiser = torch.optim.AdamW(params, lr=self.learning_rate)
        targets = torch.as_tensor(labels, dtype=torch.long)
        rng = np.random.default_rng(self.seed)
        encoder.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(texts), self.batch_size):
                batch = order[start : start + self.batch_size]
                features = encoder.tokenize([texts[i] for i in batch])
                embedding = encoder(features)["sentence_embedding"]
                loss = torch.nn.functional.cross_entropy(head(embedding), targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        encoder.eval()
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        encoder.save(str(partial), create_model_card=False)
        os.replace(partial, folder)

    def fit(self, X: Any, y: Any) -> FineTunedSentenceEncoder:
        """Fine-tune on ``(X, y)`` (reusing identical earlier fits), then fit the encoder."""
        if y is None:
            raise DataError("fine-tuning needs the outcome y")
        texts = TextJoiner().fit_transform(X).tolist()
        if any(not t for t in texts):
            raise DataError("fine-tuning needs a text in every training row")
        classes, labels = np.unique(np.asarray(y), return_inverse=True)
        if classes.size < 2:
            raise DataError("fine-tuning needs at least two outcome classes")
        base = resolve_model(self.model)
        folder = self._target_folder(base, texts, labels)
        if not (folder / "config.json").exists():
            self._train(base, texts, labels, folder)
        self.model_path_ = str(folder)
        self.encoder_ = SentenceEncoder(model=self.model_path_, max_seq_length=self.max_seq_length,
                                        show_progress=self.show_progress)
        self.encoder_.fit(texts)
        self.n_features_in_ = self.encoder_.n_features_in_
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings from the fine-tuned encoder."""
        check_is_fitted(self, "encoder_")
        return self.encoder_.transform(TextJoiner().fit_transform(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``text__emb000`` ..."""
        check_is_fitted(self, "encoder_")
        return self.encoder_.get_feature_names_out()
