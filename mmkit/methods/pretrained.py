"""Retrieval of real photographs with pretrained models only, offline: ConSE over an ImageNet
classifier for text -> image, its pooled features for image -> image, PP-OCR for printed words.

- text -> image: the ImageNet EfficientNet-Lite0 (:func:`mmkit.features.pretrained.
  efficientnet_lite0`) gives each photo a probability over the 1,000 ImageNet-1k classes;
  ConSE (:func:`mmkit.features.conse.conse`, Norouzi et al. 2014) places the photo at the
  probability-weighted mean of its ``top_t`` classes' MiniLM vectors, so that a query embedded
  by MiniLM (:class:`~mmkit.features.minilm.MiniLMEncoder`, 384-d) ranks photos by cosine;
- image -> image: the same network's globally pooled features (1280-d), L2-normalised;
- printed words: :func:`ocr_words` reads a photo's words with PP-OCR; :func:`ocr_match` and
  :func:`combine_text_scores` add :data:`OCR_WEIGHT` x (fraction of the query's content words
  read in the photo) to the ConSE cosine.

Both spaces come out of ONE forward pass (:meth:`PretrainedMethod.embed_for_index`).

**Limits.** The method knows the 1,000 ImageNet object classes and nothing else: no
relations ("a cat on a sofa" is "cat" + "sofa"), no counts, no colours or sizes of arbitrary
objects (colour words only help inside class names such as "red wine"), and no people as such
(ImageNet has no "person" class: "an astronaut" or "a woman" lands on clothing such as
"suit"). A query far from every class gets a note (:meth:`PretrainedMethod.query_note`). OCR
finds printed words only (signs, labels, captions), not handwriting, and only words large
enough in the photo.

**Measured** (``tests/test_pretrained_method.py``: 11 photos of scikit-image, scikit-learn and
matplotlib at 224 px): 8 of 9 text queries rank their photo first ("an astronaut in a space
suit" does not: no ImageNet class is close, the photo reads as jersey / dumbbell / bulletproof
vest, and Grace Hopper's suit wins). On 2 CPU cores shared with other work (load average ~4):
0.15 s a photo to embed (0.09 CPU-seconds; batches of 32, both spaces in one pass) and 0.5 s a
photo to OCR at :data:`OCR_MAX_SIDE` = 960 px (0.3 CPU-seconds; 0.4 s at 640 px, 0.7 s at
1,280 px).

**Label texts** (:func:`mmkit.features.conse.imagenet_label_texts`): each class is embedded
as all its WordNet lemmas and the WordNet definition ("tabby, tabby cat: a cat with a grey or
tawny coat mottled with black"). Measured against the first lemma alone ("tabby") and all
lemmas ("tabby, tabby cat"), each bare or in the templates "a {}" and "a photo of a {}"
(``top_t`` 5, 10 or 20 change nothing): right photo first for 8 of the 9 test queries (first
lemma 7, all lemmas 7; "a {}" + first lemma also 8), and the largest mean margin of the right
photo over the best wrong one on those 9 and 10 paraphrases (0.219; first lemma 0.142, all
lemmas 0.164). The definitions also split concrete from abstract queries most clearly
(:data:`CONCEPT_MIN`). With 7 greyscale photos of scikit-image added as distractors (camera,
coins, moon, clock, brick, grass, gravel) and 30 queries, every variant scores a mean
reciprocal rank of 0.65 - 0.72 (definitions 0.70): the choice matters less than the
classifier.
"""
from __future__ import annotations

import functools
import importlib.metadata
import re
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from mmkit._setup import pick_device
from mmkit.data.collection import Collection
from mmkit.data.images import check_images
from mmkit.errors import InputError
from mmkit.features.cache import cached, text_key
from mmkit.features.conse import (DEFAULT_SYNONYMS, DEFAULT_TEMPLATE, N_CLASSES, conse,
                                  imagenet_label_texts, label_embeddings, minilm_sha256,
                                  top_concepts, weights_sha256)
from mmkit.features.image_encoder import images_to_tensor
from mmkit.features.minilm import MiniLMEncoder
from mmkit.features.ocr import OcrSettings, ocr_image
from mmkit.features.pretrained import efficientnet_lite0, efficientnet_lite0_weights_path
from mmkit.methods.base import RetrievalMethod
from mmkit.training import progress_bar

#: the weight of the OCR evidence: the text score of a photo is ``cosine + OCR_WEIGHT *
#: fraction`` (:func:`combine_text_scores`), ``fraction`` the share of the query's content
#: words read in the photo (:func:`ocr_match`). Measured on the test gallery: the ConSE cosine
#: of the right photo beats the best wrong one by 0.04 - 0.59 (median 0.20), and the cosines of
#: one query span 0.29 - 0.72 (median 0.42). With 0.5 a photo showing every content word of
#: the query (one-word queries: the word) gains more than a typical whole span and lands on
#: top; one showing half of them gains 0.25, more than the median concept margin, so it rises
#: above photos of the same concept without the words but not above a clear concept match.
OCR_WEIGHT = 0.5

#: a query whose MiniLM vector has cosine below this with every ImageNet label vector gets a
#: :meth:`PretrainedMethod.query_note`. Calibrated on the default label texts: concrete queries
#: score 0.42 - 0.78 ("a cat" 0.65, "a cup of coffee" 0.73, "a rocket launch" 0.55,
#: "flowers" 0.63, "stars and galaxies" 0.42), abstract ones 0.16 - 0.41 ("quarterly tax
#: report" 0.20, "the meaning of life" 0.23, "democracy" 0.31, "justice" 0.40,
#: "mathematics" 0.41 -> abacus); queries about what ImageNet lacks fall below too ("an
#: astronaut in a space suit" 0.37, "the moon" 0.31, "people" 0.31).
CONCEPT_MIN = 0.40

#: the longest image side PP-OCR reads (:func:`ocr_words`); larger photos are shrunk first
OCR_MAX_SIDE = 960

#: content words of a photo's text that scikit-learn's English stop-word list holds but a query
#: about a photo means (fire, bill, system, ...): kept by :func:`stop_words`
KEPT_WORDS = frozenset({"bill", "fire", "mill", "system", "call", "name", "top", "side",
                        "front", "back", "bottom", "interest", "cry", "find", "show", "move",
                        "empty", "full", "thick", "thin", "detail", "part", "keep", "serious",
                        "sincere", "describe", "fill", "found", "give", "take", "con", "de",
                        "co", "inc", "ltd"})
#: words that only say that a query is about a picture: dropped by :func:`stop_words`
PICTURE_WORDS = frozenset({"photo", "photograph", "picture", "image", "pic", "shot",
                           "showing", "shows", "depicting"})

#: colour words: a query made only of them is flagged (colours are not ImageNet classes)
COLOUR_WORDS = frozenset({"red", "orange", "yellow", "green", "blue", "purple", "violet",
                          "pink", "brown", "black", "white", "grey", "gray", "beige", "cyan",
                          "magenta", "turquoise", "colour", "color", "colours", "colors",
                          "colourful", "colorful"})

_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """The words that are no content of a query (:func:`content_words`): scikit-learn's
    English stop words without :data:`KEPT_WORDS`, plus :data:`PICTURE_WORDS`. The list is
    cached on disk (keyed by scikit-learn's version), so a search does not import
    scikit-learn (about 1.5 s) for it."""
    def compute() -> np.ndarray:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return np.array(sorted(ENGLISH_STOP_WORDS), dtype=str)

    words = cached("english-stop-words",
                   {"sklearn": importlib.metadata.version("scikit-learn")}, compute)
    return (frozenset(str(w) for w in words) - KEPT_WORDS) | PICTURE_WORDS


def _tokens(text: str) -> list[str]:
    """Lower-case runs of letters / digits (any script) of at least 2 characters."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 2]


def content_words(query: str) -> list[str]:
    """A query's content words: lower-case runs of letters / digits of >= 2 characters,
    without :func:`stop_words`, each once, in order ("a photo of the Fire station" ->
    ["fire", "station"])."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    stop = stop_words()
    return list(dict.fromkeys(w for w in _tokens(query) if w not in stop))


# ---------------------------------------------------------------- OCR
def ocr_words(image: np.ndarray, max_side: int = OCR_MAX_SIDE) -> list[str]:
    """The printed words PP-OCR reads in one photo: uint8 [H, W, 3] (any size; grey and
    the rest of :func:`mmkit.data.images.check_images` are converted) -> lower-case words of
    letters / digits, >= 2 characters, each once, in reading order of the detected lines.

    The photo should be the full-resolution file, not the 224 px thumbnail: it is shrunk
    (area interpolation) so that its long side is at most ``max_side`` px, and read with
    :func:`mmkit.features.ocr.ocr_image` (no upscaling, detector at that side, no
    text-direction classifier); rapidocr drops lines read with confidence below 0.5.
    Measured on the 11 test photos (300 - 1,411 px) on 2 CPU cores shared with other work:
    0.5 s a photo at ``max_side=960`` (0.3 CPU-seconds), 0.4 s at 640 px, 0.7 s at 1,280 px;
    the first call also loads the PP-OCR models (about 1 s).
    """
    import cv2

    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) \
            or not 64 <= max_side <= 4096:
        raise InputError(f"max_side must be an integer in 64..4096, got {max_side!r}")
    img = check_images(np.asarray(image)[None] if np.ndim(image) in (2, 3) else image,
                       name="image", batch_only=True)
    if len(img) != 1:
        raise InputError(f"ocr_words takes one image [H, W, 3], got a batch of {len(img)}")
    img = img[0]
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    boxes = ocr_image(img, OcrSettings(upscale=1, det_limit=int(max_side)))
    return list(dict.fromkeys(w for b in boxes for w in _tokens(b.text)))


def _matches(word: str, read: set[str]) -> bool:
    if word in read:
        return True
    if word.endswith("s") and word[:-1] in read or word + "s" in read:
        return True                               # plural either way: "cats" ~ "cat"
    return len(word) >= 4 and any(word in r for r in read)   # glued words: "coffeeshop"


def ocr_match(query: str, words: Sequence[str]) -> tuple[float, list[str]]:
    """How much of a query a photo's OCR words show.

    Args:
        query: the text query.
        words: the photo's words (:func:`ocr_words`).

    Returns:
        (the fraction of the query's :func:`content_words` found among ``words``, 0.0 when it
        has none; those found, in query order). A word is found when it equals an OCR word
        (lower-cased), or does so with a plural "s" added or removed, or (>= 4 characters) is
        part of one (OCR may glue words: "coffeeshop").
    """
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise InputError(f"words must be a list of strings, got {type(words).__name__}")
    wanted = content_words(query)
    read = {str(w).lower() for w in words}
    found = [w for w in wanted if _matches(w, read)]
    return (len(found) / len(wanted) if wanted else 0.0), found


def combine_text_scores(cosines: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The text -> image score of photos: ``cosines + OCR_WEIGHT * fractions``.

    Args:
        cosines: float [...] ConSE cosines of the query with the photos.
        fractions: float [...] (same shape) of :func:`ocr_match`, in [0, 1].

    Returns:
        float32 [...].
    """
    c, f = np.asarray(cosines, np.float64), np.asarray(fractions, np.float64)
    if c.shape != f.shape:
        raise InputError(f"cosines {c.shape} and fractions {f.shape} differ in shape")
    if not (np.isfinite(c).all() and np.isfinite(f).all()):
        raise InputError("cosines and fractions must be finite")
    if ((f < 0) | (f > 1)).any():
        raise InputError("fractions must lie in [0, 1]")
    return (c + OCR_WEIGHT * f).astype(np.float32)


# ---------------------------------------------------------------- the method
def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class PretrainedMethod(RetrievalMethod):
    """Zero-shot retrieval of real photographs: ConSE for text -> image, pooled ImageNet
    features for image -> image, PP-OCR for printed words (module docstring: how and limits).

    Args:
        top_t: how many of a photo's most probable ImageNet classes ConSE combines (1..1000;
            10 as in Norouzi et al.; 5 or 20 rank the test queries the same).
        template: the format string each class name is put in (``"{}"``: the name alone;
            e.g. ``"a photo of a {}"``).
        synonyms: how a class is named: ``"first"`` lemma, ``"all"`` lemmas, or all and the
            WordNet ``"definition"`` (default; :func:`~mmkit.features.conse.imagenet_label_texts`).
        labels: 1,000 class texts of your own, replacing ``template`` and ``synonyms``
            (:data:`CONCEPT_MIN` is calibrated for the default texts only).
        ocr: whether the photos' printed words are read (:meth:`read_words`; an index built
            with this method stores them when True).
        batch_size: photos per forward pass.
        progress: progress bars while embedding.
        device: torch device (default: :func:`mmkit._setup.pick_device`).
    """

    name = "pretrained"
    pretrained = True
    joint_space = False
    input_size = 224
    directions = ("text->image", "image->image")
    #: the spaces of :meth:`embed_images` (the ``partner`` modality) and their sizes
    SPACES: ClassVar[dict[str, int]] = {"text": 384, "image": 1280}
    #: how a search combines a text query with the words read in a photo (module functions)
    ocr_match = staticmethod(ocr_match)
    combine_text_scores = staticmethod(combine_text_scores)

    def __init__(self, top_t: int = 10, template: str = DEFAULT_TEMPLATE,
                 synonyms: str = DEFAULT_SYNONYMS, labels: Sequence[str] | None = None,
                 ocr: bool = True, batch_size: int = 32, progress: bool = True,
                 device: str | None = None) -> None:
        self.top_t = _positive_int(top_t, "top_t")
        if self.top_t > N_CLASSES:
            raise InputError(f"top_t must be at most {N_CLASSES}, got {top_t}")
        if labels is None:
            self.label_texts = imagenet_label_texts(template, synonyms)
        else:
            if isinstance(labels, str) or not isinstance(labels, Sequence) \
                    or len(labels) != N_CLASSES:
                raise InputError(f"labels must be {N_CLASSES} class texts (one per ImageNet "
                                 f"class), got {type(labels).__name__} of "
                                 f"{len(labels) if isinstance(labels, Sequence) else '?'}")
            if not all(isinstance(t, str) and t.strip() for t in labels):
                raise InputError("labels must be non-empty strings")
            self.label_texts = list(labels)
        self.names = imagenet_label_texts("{}", "first")
        self.ocr = bool(ocr)
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.progress = bool(progress)
        self.device = device or pick_device()
        self._net: torch.nn.Module | None = None
        self._text: MiniLMEncoder | None = None
        self._labels: np.ndarray | None = None
        self._query_vectors: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------ loading
    @property
    def network(self) -> torch.nn.Module:
        """The ImageNet EfficientNet-Lite0 with its classifier (loaded once, eval mode)."""
        if self._net is None:
            self._net = efficientnet_lite0(pretrained=True).to(self.device).eval()
        return self._net

    @property
    def text_encoder(self) -> MiniLMEncoder:
        """MiniLM (all-MiniLM-L6-v2), frozen."""
        if self._text is None:
            self._text = MiniLMEncoder(device=self.device)
        return self._text

    @property
    def label_vectors(self) -> np.ndarray:
        """float32 [1000, 384]: the L2-normalised MiniLM vectors of :attr:`label_texts`
        (:func:`~mmkit.features.conse.label_embeddings`, cached on disk)."""
        if self._labels is None:
            self._labels = label_embeddings(self.label_texts,
                                            encoder=lambda: self.text_encoder)
        return self._labels

    @property
    def fingerprint(self) -> str:
        """``"pretrained|effnet:<sha256>|minilm:<sha256>|top_t=<T>|labels=<sha256>"``: the
        weight files' sha256 (hashed once per process and file version), ``top_t`` and a
        sha256 of the label texts -- everything the embeddings depend on. (:attr:`ocr` is
        not in it: the OCR words are stored beside the embeddings, not in them.)"""
        return (f"{self.name}|effnet:{weights_sha256(efficientnet_lite0_weights_path())}"
                f"|minilm:{minilm_sha256()}|top_t={self.top_t}"
                f"|labels={text_key(self.label_texts)}")

    def fit(self, collection: Collection | None = None, images: np.ndarray | None = None
            ) -> PretrainedMethod:
        """Nothing to learn: loads the network, MiniLM and the label vectors."""
        self.network  # noqa: B018 - load now, so that stages time honestly
        self.text_encoder  # noqa: B018
        self.label_vectors  # noqa: B018
        return self

    # ------------------------------------------------------------ images
    def _settings(self, batch_size: int | None, progress: bool | None) -> tuple[int, bool]:
        return (self.batch_size if batch_size is None else _positive_int(batch_size, "batch_size"),
                self.progress if progress is None else bool(progress))

    @torch.inference_mode()
    def _forward(self, images: np.ndarray, spaces: list[str], batch_size: int, progress: bool
                 ) -> dict[str, np.ndarray]:
        """One pass per batch: pooled features and class probabilities, turned into the
        outputs of :meth:`embed_for_index` batch by batch (no [N, 1000] array is kept)."""
        x = check_images(images, name="pretrained images", batch_only=True)
        if len(x) == 0:
            raise InputError("pretrained images: the batch is empty")
        net = self.network
        labels = self.label_vectors if "text" in spaces else None
        parts: dict[str, list[np.ndarray]] = {}
        for s in progress_bar(range(0, len(x), batch_size), progress=progress,
                              desc="EfficientNet-Lite0"):
            t = images_to_tensor(x[s:s + batch_size], size=self.input_size, device=self.device)
            f = net.forward_head(net.forward_features(t), pre_logits=True)
            probs = torch.softmax(net.classifier(f).float(), dim=1).cpu().numpy()
            if labels is not None:
                parts.setdefault("text", []).append(conse(probs, labels, self.top_t))
            if "image" in spaces:
                parts.setdefault("image", []).append(
                    torch.nn.functional.normalize(f.float(), dim=1).cpu().numpy())
            ids, p = top_concepts(probs, self.top_t)
            parts.setdefault("x_concept_ids", []).append(ids.astype(np.int16))
            parts.setdefault("x_concept_probs", []).append(p)
        return {k: np.concatenate(v) for k, v in parts.items()}

    def _check_spaces(self, spaces: Sequence[str]) -> list[str]:
        if isinstance(spaces, str):
            spaces = [spaces]
        spaces = list(spaces)
        bad = [s for s in spaces if s not in self.SPACES]
        if bad or not spaces:
            raise InputError(f"method 'pretrained' has the spaces {', '.join(self.SPACES)} "
                             f"(text -> image, image -> image), got {bad or 'none'}")
        return spaces

    def embed_images(self, images: np.ndarray, *, partner: str = "text",
                     batch_size: int | None = None, progress: bool | None = None
                     ) -> np.ndarray:
        """uint8 [N, 224, 224, 3] -> float32, L2-normalised: [N, 384] (``partner="text"``,
        the ConSE vector in MiniLM's space) or [N, 1280] (``"image"``, the pooled
        features). Images of another size are resized (squashed) to 224 px."""
        space = self._check_spaces([partner])[0]
        return self.embed_for_index(images, [space], batch_size=batch_size,
                                    progress=progress)[space]

    def embed_for_index(self, images: np.ndarray, spaces: Sequence[str], *,
                        batch_size: int | None = None, progress: bool | None = None
                        ) -> dict[str, np.ndarray]:
        """One forward pass for every space: ``{"text": float32 [N, 384], "image": float32
        [N, 1280]}`` (those of ``spaces``), plus ``"x_concept_ids"`` int16 [N, top_t] and
        ``"x_concept_probs"`` float32 [N, top_t], each photo's most probable ImageNet
        classes (for :meth:`explain_text` / :meth:`explain_image`)."""
        return self._forward(images, self._check_spaces(spaces),
                             *self._settings(batch_size, progress))

    def read_words(self, image: np.ndarray) -> list[str]:
        """:func:`ocr_words` of one full-resolution photo; [] when :attr:`ocr` is False."""
        return ocr_words(image) if self.ocr else []

    # ------------------------------------------------------------ texts, sounds
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """M strings -> float32 [M, 384], L2-normalised MiniLM vectors (the space of the
        ConSE image vectors)."""
        if isinstance(texts, (str, bytes)):
            raise InputError("texts must be a list of strings, got a single string: wrap it "
                             "in a list")
        if len(texts) == 0:
            raise InputError("embed_texts: no texts given")
        if len(texts) == 1 and isinstance(texts[0], str) and texts[0] in self._query_vectors:
            return self._query_vectors[texts[0]][None].copy()   # embedded by query_note
        return self.text_encoder.embed_texts(list(texts), batch_size=self.batch_size)

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        raise InputError("method 'pretrained' does not embed sound (text -> image and "
                         "image -> image only)")

    def _query_vector(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise InputError(f"query must be a string, got {type(text).__name__}")
        v = self._query_vectors.get(text)
        if v is None:
            if len(self._query_vectors) >= 256:
                self._query_vectors.clear()
            v = self._query_vectors[text] = self.embed_texts([text])[0]
        return v

    # ------------------------------------------------------------ notes, explanations
    def query_note(self, text: str) -> str | None:
        """One line when the query is close to no ImageNet class (cosine below
        :data:`CONCEPT_MIN` with every label vector), names only colours, or has no content
        word; None otherwise."""
        if not isinstance(text, str):
            raise InputError(f"query must be a string, got {type(text).__name__}")
        if not text.strip():
            return "the query is empty"
        words = content_words(text)
        if not words:
            return (f"{text!r} has no content words (only common words such as 'the', "
                    f"'photo'): nothing to search for")
        if all(w in COLOUR_WORDS for w in words):
            return (f"{text!r} names only colours: this method ranks by the 1,000 ImageNet "
                    f"objects, not by colour")
        cos = self.label_vectors @ self._query_vector(text)
        best = int(np.argmax(cos))
        if cos[best] < CONCEPT_MIN:
            return (f"{text!r} is close to none of the 1,000 ImageNet concepts this method "
                    f"knows (nearest: {self.names[best]!r}, cosine {cos[best]:.2f} < "
                    f"{CONCEPT_MIN}); results will be weak")
        return None

    def _check_concepts(self, ids, probs, name: str) -> tuple[np.ndarray, np.ndarray]:
        i, p = np.asarray(ids), np.asarray(probs, np.float64)
        if i.ndim != 1 or p.shape != i.shape:
            raise InputError(f"{name}: concept ids and probs must be two [T] vectors of one "
                             f"length, got shapes {i.shape} and {p.shape}")
        if i.size and (not np.issubdtype(i.dtype, np.integer) or i.min() < 0
                       or i.max() >= N_CLASSES):
            raise InputError(f"{name}: concept ids must be integers in 0..{N_CLASSES - 1}")
        return i.astype(np.int64), p

    def explain_text(self, query: str, concept_ids: np.ndarray, concept_probs: np.ndarray,
                     ocr_words: Sequence[str] = (), k: int = 3) -> dict:
        """Why a photo matched a text query.

        Args:
            query: the text query.
            concept_ids, concept_probs: the photo's ``x_concept_ids`` / ``x_concept_probs``
                (int [T], float [T]).
            ocr_words: the photo's OCR words (:func:`ocr_words`).
            k: how many concepts.

        Returns:
            ``{"concepts": [(label, contribution), ...], "ocr": [matched words]}``: the ``k``
            concepts with the largest ``p_i * cos(label_i, query)``, largest first, and the
            query words read in the photo (:func:`ocr_match`).
        """
        ids, p = self._check_concepts(concept_ids, concept_probs, "explain_text")
        k = _positive_int(k, "k")
        contribution = p * (self.label_vectors[ids] @ self._query_vector(query))
        order = np.argsort(-contribution, kind="stable")[:k]
        return {"concepts": [(self.names[ids[j]], float(contribution[j])) for j in order],
                "ocr": ocr_match(query, ocr_words)[1]}

    def explain_image(self, query_ids: np.ndarray, query_probs: np.ndarray,
                      hit_ids: np.ndarray, hit_probs: np.ndarray, k: int = 3) -> dict:
        """Why a photo matched a query photo: ``{"concepts": [label, ...]}``, the ImageNet
        classes among the top ones of both (int [T] ids, float [T] probabilities each), the
        ``k`` with the largest ``min(p_query, p_hit)`` first ([] when they share none)."""
        qi, qp = self._check_concepts(query_ids, query_probs, "explain_image (query)")
        hi, hp = self._check_concepts(hit_ids, hit_probs, "explain_image (hit)")
        k = _positive_int(k, "k")
        hit = dict(zip(hi.tolist(), hp.tolist()))
        shared = sorted(((min(p, hit[c]), c) for c, p in zip(qi.tolist(), qp.tolist())
                         if c in hit), key=lambda t: (-t[0], t[1]))
        return {"concepts": [self.names[c] for _, c in shared[:k]]}


__all__ = ["PretrainedMethod", "OCR_WEIGHT", "CONCEPT_MIN", "OCR_MAX_SIDE", "KEPT_WORDS",
           "PICTURE_WORDS", "COLOUR_WORDS", "stop_words", "content_words", "ocr_words",
           "ocr_match", "combine_text_scores"]
