"""Text features: checked text input, a word-level tokenizer, bag of words and TF-IDF, and the
ground truth of text -> text retrieval on the world.

Bad input (:func:`as_texts`, used by the text encoders of
:mod:`~mmkit.features.sentence_encoders` and :mod:`~mmkit.features.minilm`):

- ``None`` in a list of texts is refused with one line naming its index (a missing caption is a
  bug upstream; pass ``""`` for a text that says nothing), and so is any entry that is neither
  ``str`` nor ``bytes`` (numbers, lists...), and a single ``str`` passed where a list is wanted;
- ``bytes`` are decoded as UTF-8 with ``errors="replace"`` (an invalid byte becomes U+FFFD),
  and the texts that needed a replacement are *counted* (:attr:`TextReport.replaced`);
- empty and whitespace-only texts are valid: they have no tokens (length 0), and every encoder
  gives them one fixed embedding (counted in :attr:`TextReport.empty`);
- very long texts are cut after ``max_length`` tokens (64 words for :class:`WordTokenizer`,
  256 WordPiece tokens for MiniLM, as sentence-transformers does) and counted in
  :attr:`TextReport.truncated`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmkit.data.vocab import _TOKEN, tokenize, vocabulary_words
from mmkit.errors import InputError
from mmkit.features.similarity import cosine_scores  # noqa: F401 - re-exported
from mmkit.metrics import average_precision, ndcg_at_k, precision_at_k

#: special tokens of :class:`WordTokenizer`: padding is id 0, unknown words id 1
PAD, UNK = "[PAD]", "[UNK]"
#: default cut-off of :meth:`WordTokenizer.encode`, in words (world captions have at most ~30)
MAX_WORDS = 64


# ------------------------------------------------------------------------------ input checks
@dataclass(frozen=True)
class TextReport:
    """What happened to a batch of texts on its way in: how many there were, how many were
    empty (or whitespace only), decoded from bytes with replacement characters, truncated."""

    n: int
    empty: int = 0
    replaced: int = 0
    truncated: int = 0

    def __str__(self) -> str:
        return (f"{self.n} texts: {self.empty} empty, {self.replaced} decoded with replacement "
                f"characters, {self.truncated} truncated")


def as_texts(texts: Any, name: str = "texts") -> tuple[list[str], int]:
    """Check a batch of texts and decode bytes (rules in the module docstring).

    Returns:
        (the texts as a list of ``str``, how many ``bytes`` entries needed replacement
        characters). Raises :class:`~mmkit.errors.InputError` (one line naming the index).
    """
    if isinstance(texts, (str, bytes, bytearray)):
        raise InputError(f"{name} must be a sequence of texts, got a single "
                         f"{type(texts).__name__}: wrap it in a list")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise InputError(f"{name} must be a sequence of texts, got {type(texts).__name__}")
    out: list[str] = []
    replaced = 0
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append(str(t))
        elif isinstance(t, (bytes, bytearray)):
            try:
                out.append(bytes(t).decode("utf-8"))
            except UnicodeDecodeError:
                out.append(bytes(t).decode("utf-8", errors="replace"))
                replaced += 1
        elif t is None:
            raise InputError(f"{name}[{i}] is None (a missing text?); pass '' for an empty one")
        else:
            raise InputError(f"{name}[{i}] is a {type(t).__name__}, not a text (str or bytes)")
    return out, replaced


# ------------------------------------------------------------------------------ tokenizer
@dataclass(frozen=True)
class EncodedTexts:
    """Texts as padded word ids: ``ids`` int64 [N, L] (``L`` = the longest kept length, at least
    1; padded with :attr:`WordTokenizer.pad_id`), ``lengths`` int64 [N] (0 for an empty text),
    and the :class:`TextReport` of the batch. ``ids`` and ``lengths`` are torch tensors."""

    ids: Any
    lengths: Any
    report: TextReport


class WordTokenizer:
    """A word-level tokenizer built with Hugging Face ``tokenizers`` (``WordLevel`` model).

    Normalisation and pre-tokenisation reproduce :func:`mmkit.data.captions.tokenize` (lower
    case, runs of ``[a-z0-9]`` joined by inner hyphens, everything else dropped), so the
    tokens are exactly the Karpathy-style tokens of the world. Ids: ``[PAD]`` = 0,
    ``[UNK]`` = 1, then the words.

    Example:
        >>> tok = WordTokenizer.fit(["A red circle.", "a blue box"])
        >>> tok.tokens("A red, red box!")
        ['a', 'red', 'red', 'box']
        >>> enc = tok.encode(["a red box", ""])
        >>> enc.ids.shape, enc.lengths.tolist()
        (torch.Size([2, 3]), [3, 0])
    """

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer
        vocab = tokenizer.get_vocab()
        if vocab.get(PAD) != 0 or vocab.get(UNK) != 1:
            raise InputError("WordTokenizer: [PAD] must be id 0 and [UNK] id 1")
        self._words = [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])]

    # -- construction
    @staticmethod
    def _empty():
        from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordLevel

        tok = Tokenizer(WordLevel(unk_token=UNK))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(_TOKEN.pattern), behavior="removed",
                                                 invert=True)
        return tok

    @classmethod
    def fit(cls, texts: Sequence[str], min_frequency: int = 1,
            max_size: int | None = None) -> "WordTokenizer":
        """Learn the vocabulary from ``texts`` (words seen at least ``min_frequency`` times;
        at most ``max_size`` entries, special tokens included). Ids follow frequency."""
        from tokenizers.trainers import WordLevelTrainer

        texts, _ = as_texts(texts)
        if not any(t.strip() for t in texts):
            raise InputError("WordTokenizer.fit: no words in the texts")
        kwargs = {} if max_size is None else {"vocab_size": int(max_size)}
        trainer = WordLevelTrainer(special_tokens=[PAD, UNK], min_frequency=int(min_frequency),
                                   show_progress=False, **kwargs)
        tok = cls._empty()
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_words(cls, words: Sequence[str]) -> "WordTokenizer":
        """A tokenizer with a fixed vocabulary: ``[PAD]``, ``[UNK]``, then ``words`` in order."""
        from tokenizers.models import WordLevel

        words = [w for w in words if w not in (PAD, UNK)]
        if len(set(words)) != len(words):
            raise InputError("WordTokenizer.from_words: duplicate words")
        vocab = {PAD: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(words)}}
        tok = cls._empty()
        tok.model = WordLevel(vocab, unk_token=UNK)
        return cls(tok)

    @classmethod
    def world(cls) -> "WordTokenizer":
        """The world's closed vocabulary (:func:`mmkit.data.vocab.vocabulary_words`, sorted):
        the same ids on every machine, so the trained checkpoints need no vocabulary file."""
        return cls.from_words(sorted(vocabulary_words()))

    def to_json(self) -> str:
        """The ``tokenizers`` JSON of this tokenizer (``from_json`` reads it back)."""
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> "WordTokenizer":
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_str(text)
        except Exception as exc:  # tokenizers raises its own exception types
            raise InputError(f"WordTokenizer.from_json: not a tokenizer ({exc})") from None
        return cls(tok)

    # -- properties
    @property
    def vocab_size(self) -> int:
        return len(self._words)

    @property
    def words(self) -> list[str]:
        """The vocabulary by id (``words[0] == "[PAD]"``)."""
        return list(self._words)

    pad_id = 0
    unk_id = 1

    def id_of(self, word: str) -> int:
        """The id of ``word`` (:attr:`unk_id` when it is not in the vocabulary)."""
        found = self._tok.token_to_id(word)
        return self.unk_id if found is None else int(found)

    # -- use
    def tokens(self, text: str) -> list[str]:
        """The words of one text (before the vocabulary lookup)."""
        (text,), _ = as_texts([text])
        return [t for t, _ in self._tok.pre_tokenizer.pre_tokenize_str(
            self._tok.normalizer.normalize_str(text))]

    def encode(self, texts: Sequence[str | bytes], max_length: int = MAX_WORDS) -> EncodedTexts:
        """Texts -> :class:`EncodedTexts` (ids int64 [N, L], lengths int64 [N], report); a text
        longer than ``max_length`` words keeps its first ``max_length`` (counted)."""
        import torch

        if not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise InputError(f"max_length must be a positive integer, got {max_length!r}")
        texts, replaced = as_texts(texts)
        rows = [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]
        truncated = sum(len(r) > max_length for r in rows)
        rows = [r[:max_length] for r in rows]
        lengths = [len(r) for r in rows]
        width = max([1, *lengths])
        ids = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        report = TextReport(len(texts), sum(not t.strip() for t in texts), replaced, truncated)
        return EncodedTexts(torch.from_numpy(ids), torch.tensor(lengths, dtype=torch.int64),
                            report)

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Ids -> words (padding dropped)."""
        return [self._words[int(i)] for i in ids if int(i) != self.pad_id]

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"


# ------------------------------------------------------------------------------ bag of words
def bag_of_words(tokenizer: WordTokenizer, texts: Sequence[str | bytes], *,
                 binary: bool = False) -> np.ndarray:
    """Word counts float32 [N, vocab_size] (column = word id; ``[PAD]`` stays 0, unknown words
    count in the ``[UNK]`` column); ``binary=True``: presence 0/1. No truncation."""
    enc = tokenizer.encode(texts, max_length=10**9)
    ids, lengths = enc.ids.numpy(), enc.lengths.numpy()
    out = np.zeros((len(ids), tokenizer.vocab_size), np.float32)
    rows = np.repeat(np.arange(len(ids)), lengths)
    cols = np.concatenate([r[:n] for r, n in zip(ids, lengths)]) if len(ids) else np.zeros(0, int)
    np.add.at(out, (rows, cols), 1.0)
    return (out > 0).astype(np.float32) if binary else out


class TfidfEncoder:
    """TF-IDF over unigrams and bigrams with Karpathy-style tokens.

    Example:
        >>> enc = TfidfEncoder().fit(["a red circle", "a blue square"])
        >>> enc.transform(["red square"]).shape[0]
        1
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2,
                 sublinear_tf: bool = True) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer  # imported when first made

        self.vectorizer = TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False,
                                          ngram_range=ngram_range, min_df=min_df,
                                          sublinear_tf=sublinear_tf)

    def fit(self, texts: Sequence[str]) -> "TfidfEncoder":
        """Learn the vocabulary and IDF weights from ``texts``."""
        if len(texts) == 0:
            raise ValueError("TfidfEncoder.fit: no texts")
        self.vectorizer.set_params(min_df=min(self.vectorizer.min_df, len(texts)))
        self.vectorizer.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Dense, L2-normalised TF-IDF vectors: float32 [len(texts), vocabulary]."""
        return self.vectorizer.transform(texts).toarray().astype(np.float32)

    @property
    def vocabulary(self) -> list[str]:
        return list(self.vectorizer.get_feature_names_out())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays: the vocabulary (column order) and IDF weights."""
        return {"vocabulary": np.array(self.vocabulary, dtype=str),
                "idf": np.asarray(self.vectorizer.idf_, np.float64),
                "ngram_range": np.array(self.vectorizer.ngram_range),
                "sublinear_tf": np.array(self.vectorizer.sublinear_tf)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "TfidfEncoder":
        """The fitted encoder :meth:`to_arrays` describes (transforms equal the original's)."""
        enc = cls(tuple(int(v) for v in arrays["ngram_range"]),
                  sublinear_tf=bool(arrays["sublinear_tf"]))
        vocab = [str(w) for w in arrays["vocabulary"]]
        enc.vectorizer.set_params(vocabulary={w: i for i, w in enumerate(vocab)})
        enc.vectorizer.idf_ = np.asarray(arrays["idf"], np.float64)
        return enc


# ------------------------------------------------------------------ text -> text ground truth
def caption_agreement(main_a: np.ndarray, main_b: np.ndarray) -> np.ndarray:
    """Graded relevance int8 [A, B] between captions, from what their main mentions say.

    ``main_a``, ``main_b``: int [A, 5], [B, 5] stated attributes (shape, colour, texture, size,
    horizontal position; -1 = not said), e.g. ``world.caption_main[ids]``. The grade is

    - **0** when the two contradict each other (an attribute stated by both, with different
      values), or agree on nothing;
    - else the number of attributes both state with the same value, capped at **3**.

    So "a red circle" vs "a scarlet disc on the left" is 2, vs "a red square" 0. Second objects,
    relations, style and sign are not compared. Two captions of one image never contradict.
    """
    a = np.asarray(main_a)[:, None, :]
    b = np.asarray(main_b)[None, :, :]
    both = (a >= 0) & (b >= 0)
    agree = (both & (a == b)).sum(-1)
    clash = (both & (a != b)).any(-1)
    return np.where(clash, 0, np.minimum(agree, 3)).astype(np.int8)


def text_text_ground_truth(world, caption_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of text -> text retrieval among ``caption_ids`` (queries = gallery).

    Returns:
        grades int8 [Q, Q] (:func:`caption_agreement`) and positives bool [Q, Q] (another
        caption of the same image); the query itself (diagonal) has grade 0 and is no positive.
    """
    ids = np.asarray(caption_ids)
    grades = caption_agreement(world.caption_main[ids], world.caption_main[ids])
    img = world.caption_image[ids]
    positives = img[:, None] == img[None, :]
    np.fill_diagonal(grades, 0)
    np.fill_diagonal(positives, False)
    return grades, positives




#: the columns of :func:`text_retrieval_metrics`
TEXT_METRICS = ("mAP", "P@10", "NDCG@10")


def text_retrieval_metrics(scores: np.ndarray, grades: np.ndarray,
                           positives: np.ndarray) -> dict[str, float]:
    """mAP and P@10 over ``positives`` (bool [Q, N]) and NDCG@10 over ``grades`` (linear gain),
    averaged over the queries, for a score matrix [Q, N] (higher is better)."""
    pos = np.asarray(positives).astype(np.int8)
    return {"mAP": float(average_precision(scores, pos).mean()),
            "P@10": float(precision_at_k(scores, pos, 10).mean()),
            "NDCG@10": float(ndcg_at_k(scores, grades, 10).mean())}


def chance_metrics(grades: np.ndarray, positives: np.ndarray, draws: int = 5,
                   seed: int = 0) -> dict[str, float]:
    """:func:`text_retrieval_metrics` of random rankings (the mean over ``draws`` seeded
    draws; the query itself still excluded)."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        s = rng.random(np.shape(grades)).astype(np.float32)
        np.fill_diagonal(s, -np.inf)
        runs.append(text_retrieval_metrics(s, grades, positives))
    return {k: float(np.mean([r[k] for r in runs])) for k in TEXT_METRICS}


def format_metrics_table(rows: dict[str, dict[str, float]], digits: int = 3) -> str:
    """A plain-text table: one row per method, the columns of :data:`TEXT_METRICS`."""
    width = max(len(k) for k in rows) + 2
    lines = ["method".ljust(width) + "".join(f"{m:>9}" for m in TEXT_METRICS)]
    for name, r in rows.items():
        lines.append(name.ljust(width) + "".join(f"{r[m]:>9.{digits}f}" for m in TEXT_METRICS))
    return "\n".join(lines)
