"""ConSE: zero-shot image embeddings in a sentence encoder's space (Norouzi et al., ICLR 2014,
"Zero-shot learning by convex combination of semantic embeddings").

An ImageNet classifier gives each image a probability over 1,000 classes; ConSE places the
image at the convex combination of the embeddings of its ``T`` most probable class names,
weighted by their renormalised probabilities. Here the class names are embedded with the
pretrained MiniLM sentence encoder (:class:`~mmkit.features.minilm.MiniLMEncoder`, 384-d), so
that an image lands in the space of any text query MiniLM embeds:

- :func:`imagenet_label_texts`: the 1,000 class texts, from timm's bundled WordNet synset
  lemmas (nothing is downloaded); :data:`DEFAULT_SYNONYMS` / :data:`DEFAULT_TEMPLATE` are the
  variant measured best (module docstring of :mod:`mmkit.methods.pretrained`);
- :func:`label_embeddings`: their L2-normalised MiniLM vectors, float32 [1000, 384], cached;
- :func:`conse`: probabilities [N, C] and label vectors [C, d] -> float32 [N, d];
- :func:`top_concepts`: the ``k`` most probable classes of each image.

timm and transformers are imported when the texts or vectors are made, not with this module.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable, Sequence

import numpy as np

from mmkit.checkpoints import file_sha256
from mmkit.errors import InputError
from mmkit.features.cache import cached, text_key
from mmkit.features.minilm import MiniLMEncoder, minilm_folder

#: how many ImageNet-1k classes the labels cover
N_CLASSES = 1000
#: which WordNet lemmas of a synset name a class: ``"first"`` ("tabby"), ``"all"`` ("tabby,
#: tabby cat") or ``"definition"`` (all lemmas and the WordNet gloss)
SYNONYM_CHOICES: tuple[str, ...] = ("first", "all", "definition")
#: the variant used by default: every lemma and the WordNet definition, measured best on the
#: photo queries of ``tests/test_pretrained_method.py`` (see :mod:`mmkit.methods.pretrained`)
DEFAULT_SYNONYMS = "definition"
#: the template the class names are put in by default (``"{}"``: the names alone)
DEFAULT_TEMPLATE = "{}"
#: the cache name of :func:`label_embeddings`
LABELS_CACHE = "conse-labels"


def imagenet_label_texts(template: str = DEFAULT_TEMPLATE,
                         synonyms: str = DEFAULT_SYNONYMS) -> list[str]:
    """The 1,000 ImageNet-1k class texts, in class-index order.

    Args:
        template: a format string with one ``{}`` that receives the class name, e.g.
            ``"a photo of a {}"``; ``"{}"`` keeps the names alone.
        synonyms: ``"first"``: the first WordNet lemma ("tabby"); ``"all"``: every lemma,
            comma-separated ("tabby, tabby cat"); ``"definition"``: every lemma and the
            WordNet gloss ("tabby, tabby cat: a cat with a grey or tawny coat ...").

    Returns:
        1,000 strings, from timm's bundled synset files (nothing is downloaded).
    """
    if not isinstance(template, str) or template.count("{}") != 1 or "{" in template.replace(
            "{}", ""):
        raise InputError(f"label template must contain '{{}}' exactly once (and no other "
                         f"braces), got {template!r}")
    if synonyms not in SYNONYM_CHOICES:
        raise InputError(f"synonyms must be one of {', '.join(SYNONYM_CHOICES)}, got "
                         f"{synonyms!r}")
    return [template.replace("{}", name) for name in _names(synonyms)]


@functools.lru_cache(maxsize=3)
def _names(synonyms: str) -> tuple[str, ...]:
    """The names from timm's synset files, cached on disk (keyed by timm's version): a
    search that needs them does not pay for importing timm (about 2 s)."""

    def compute() -> np.ndarray:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        detailed = synonyms == "definition"
        out = [info.index_to_description(i, detailed=detailed) for i in range(N_CLASSES)]
        if synonyms == "first":
            out = [name.split(",")[0].strip() for name in out]
        return np.array(out, dtype=str)

    names = cached("imagenet-label-names", {"synonyms": synonyms,
                                            "timm": importlib.metadata.version("timm")},
                   compute)
    return tuple(str(n) for n in names)


@functools.lru_cache(maxsize=8)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def weights_sha256(path: str | os.PathLike) -> str:
    """:func:`mmkit.checkpoints.file_sha256` of a weight file, remembered per (path, size,
    modification time) in this process: a file changed on disk is hashed again."""
    st = os.stat(path)
    return _sha_of(str(path), st.st_size, st.st_mtime_ns)


def minilm_sha256() -> str:
    """SHA-256 of the MiniLM weights (``model.safetensors`` of
    :func:`~mmkit.features.minilm.minilm_folder`)."""
    return weights_sha256(minilm_folder() / "model.safetensors")


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InputError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise InputError(f"{name} is empty")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise InputError(f"{name}[{bad}] must be a non-empty string, got {texts[bad]!r}")
    return texts


def label_embeddings(texts: Sequence[str] | None = None, *,
                     encoder: MiniLMEncoder | Callable[[], MiniLMEncoder] | None = None,
                     cache: bool = True) -> np.ndarray:
    """L2-normalised MiniLM vectors of the class texts: float32 [C, 384].

    Args:
        texts: the C class texts (default :func:`imagenet_label_texts`, C = 1,000).
        encoder: a loaded MiniLM to use, or a function returning the package's MiniLM (called
            only when the vectors are not cached yet); default: the package's MiniLM is loaded
            when the vectors are not cached yet.
        cache: read / write :mod:`mmkit.features.cache` (name :data:`LABELS_CACHE`), keyed by
            the texts and the sha256 of the MiniLM weights: a cache hit loads no model.
    """
    texts = imagenet_label_texts() if texts is None else _check_texts(texts, "label texts")

    def compute() -> np.ndarray:
        if isinstance(encoder, MiniLMEncoder):
            model = encoder
        else:
            model = encoder() if encoder is not None else MiniLMEncoder()
        return model.embed_texts(texts, batch_size=128)

    folder = encoder.folder if isinstance(encoder, MiniLMEncoder) else minilm_folder()
    parts = {"texts": text_key(texts),
             "weights": weights_sha256(folder / "model.safetensors")}
    out = np.asarray(cached(LABELS_CACHE, parts, compute, enabled=cache), np.float32)
    return _l2(out)


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _check_probs(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] == 0:
        raise InputError(f"{name} must be [N, C] class probabilities, got shape {p.shape}")
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)) \
            or p.dtype == bool:
        raise InputError(f"{name} must be numeric, got dtype {p.dtype}")
    if not np.isfinite(p).all():
        raise InputError(f"{name} contains NaN or infinite values")
    if (p < 0).any():
        raise InputError(f"{name} must be non-negative (probabilities, not logits)")
    return p


def _check_k(k: int, n_classes: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_classes:
        raise InputError(f"{name} must be an integer in 1..{n_classes}, got {k!r}")
    return int(k)


#: rows per chunk of :func:`conse` / :func:`top_concepts` (bounds their memory: a chunk of
#: [rows, top_t, d] float64 gathered label vectors)
CHUNK = 1024


def _top(p: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries of each row, largest first; ties go to the lower class index."""
    return np.concatenate([np.argsort(-p[s:s + CHUNK], axis=1, kind="stable")[:, :k]
                           for s in range(0, len(p), CHUNK)]) if len(p) else \
        np.zeros((0, k), np.int64)


def top_concepts(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable classes of each image.

    Args:
        probs: float [N, C] class probabilities (non-negative).
        k: how many, 1..C.

    Returns:
        (ids int64 [N, k], probs float32 [N, k]), most probable first (ties: lower index
        first).
    """
    p = _check_probs(probs)
    k = _check_k(k, p.shape[1], "k")
    ids = _top(p, k).astype(np.int64)
    return ids, np.take_along_axis(p, ids, axis=1).astype(np.float32)


def conse(probs: np.ndarray, label_vectors: np.ndarray, top_t: int = 10) -> np.ndarray:
    """ConSE embeddings: each image at the convex combination of its ``top_t`` most probable
    classes' vectors, weighted by their probabilities renormalised to sum to one, then
    L2-normalised.

    Args:
        probs: float [N, C] class probabilities (non-negative; each row's top ``top_t`` must
            not all be zero). Ties among equal probabilities go to the lower class index.
        label_vectors: float [C, d], one vector per class (:func:`label_embeddings`).
        top_t: how many classes are combined, 1..C (Norouzi et al. use 10).

    Returns:
        float32 [N, d], L2-normalised rows (computed in float64, :data:`CHUNK` rows at a
        time).
    """
    p = _check_probs(probs)
    s = np.asarray(label_vectors)
    if s.ndim != 2 or s.shape[0] != p.shape[1]:
        raise InputError(f"label_vectors must be [C, d] with C = {p.shape[1]} (the columns of "
                         f"probs), got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or not np.isfinite(s).all():
        raise InputError("label_vectors must be finite numbers")
    top_t = _check_k(top_t, p.shape[1], "top_t")
    s = s.astype(np.float64)
    out = np.zeros((len(p), s.shape[1]), np.float32)
    for start in range(0, len(p), CHUNK):
        chunk = p[start:start + CHUNK].astype(np.float64)
        ids = _top(chunk, top_t)
        w = np.take_along_axis(chunk, ids, axis=1)
        total = w.sum(axis=1, keepdims=True)
        if (total <= 0).any():
            row = start + int(np.flatnonzero(total[:, 0] <= 0)[0])
            raise InputError(f"probs row {row}: its top {top_t} probabilities are all zero")
        out[start:start + CHUNK] = _l2(np.einsum("nt,ntd->nd", w / total, s[ids]))
    return out


__all__ = ["N_CLASSES", "SYNONYM_CHOICES", "DEFAULT_SYNONYMS", "DEFAULT_TEMPLATE",
           "LABELS_CACHE", "imagenet_label_texts", "weights_sha256", "minilm_sha256",
           "label_embeddings", "top_concepts", "conse", "CHUNK"]
