"""ONNX Runtime backend for sentence encoders: faster CPU embedding, optionally int8.

The transformer of a local sentence-transformers / Hugging Face model folder is
exported once to ONNX (and, for ``int8``, dynamically quantised per channel) under
``cache_dir()/onnx/<weights hash>/``; texts are then tokenised with the model's own
tokenizer, run through ONNX Runtime and mean-pooled over real tokens, as
sentence-transformers does for MiniLM. Needs the optional packages ``onnx`` and
``onnxruntime``.

Examples
--------
>>> from medpredict.encoders.text import default_model_path
>>> model = OnnxSentenceModel(str(default_model_path()))
>>> model.encode(["Chest pain.", "Fever and cough for three days."]).shape
(2, 384)
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medpredict.encoders.embedding_cache import weights_fingerprint
from medpredict.optional import require
from medpredict.settings import cache_dir

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _export(model_path: str, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    example = tokenizer(["a padded example sentence of some length", "short"],
                        padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "hidden")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(Encoder(model), tuple(example[n] for n in _INPUTS), str(target),
                          input_names=list(_INPUTS), output_names=["hidden"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)


def onnx_model_file(model_path: str, quantize: bool) -> Path:
    """Export (once) the model folder's transformer to ONNX; returns the ``.onnx`` file."""

    folder = cache_dir() / "onnx" / weights_fingerprint(Path(model_path))[:24]
    target = folder / ("model-int8.onnx" if quantize else "model.onnx")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "model.onnx"
    if not plain.exists():
        partial = folder / "model.onnx.partial"
        _export(model_path, partial)
        os.replace(partial, plain)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = folder / "model-int8.onnx.partial"
        quantize_dynamic(str(plain), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(partial, target)
    return target


def _pooling_mode(model_path: str) -> str:
    config = Path(model_path) / "1_Pooling" / "config.json"
    if config.exists() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


class OnnxSentenceModel:
    """A sentence encoder run by ONNX Runtime, with sentence-transformers' ``encode`` call.

    Parameters
    ----------
    model_path : str
        Local model folder (tokenizer and transformer weights).
    quantize : bool
        Use int8 dynamically quantised weights (faster, slightly different vectors).
    threads : int, optional
        ONNX Runtime intra-op threads (default: all cores).
    """

    def __init__(self, model_path: str, quantize: bool = False, threads: int | None = None) -> None:
        onnxruntime = require("onnxruntime", extra="text")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(onnx_model_file(model_path, quantize)), options,
            providers=["CPUExecutionProvider"],
        )
        self.pooling = _pooling_mode(model_path)
        self.max_seq_length = min(256, self.tokenizer.model_max_length)

    def encode(self, texts: list[str], batch_size: int = 32, normalize_embeddings: bool = True,
               **_: Any) -> np.ndarray:
        """Embeddings of ``texts`` in input order."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.max_seq_length, return_tensors="np")
            feeds = {name: batch[name].astype(np.int64) for name in _INPUTS if name in batch}
            if "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            hidden = self.session.run(None, feeds)[0]
            if self.pooling == "cls":
                vectors = hidden[:, 0]
            else:
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                vectors = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if normalize_embeddings:
                vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True),
                                            1e-12, None)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out
