"""Word embeddings: skip-gram with negative sampling (word2vec's objective) on world captions.

- :class:`SkipGram` (Mikolov et al. 2013) and its training pieces (:func:`skipgram_pairs`,
  :func:`negative_table`, word2vec's subsampling of frequent words);
- :func:`nearest_words`, :func:`synonym_groups`, :func:`synonym_neighbour_rate` (do the
  world's synonyms cluster?), :func:`mean_word_vectors` (a sentence as its mean word vector).

Its config is :class:`Word2VecConfig`. The trained model is the checkpoint ``word2vec_world``
(:data:`CHECKPOINTS`,
``mmkit.checkpoints.load("word2vec_world")``), trained on captions of fresh worlds (seeds
1101-1102), never on the seed-0 evaluation world. Its vocabulary is the world's closed
vocabulary (:meth:`WordTokenizer.world`); words outside it map to ``[UNK]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit._setup import pick_device
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate
from mmkit.data import World
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.features._training import WORLD_VOCAB_SIZE, check_vocab
from mmkit.features.text import EncodedTexts, WordTokenizer
from mmkit.training import LossLog, progress_bar, seeded, torch_threads
from mmkit.validate import integer, number, positive_int


@dataclass(frozen=True)
class Word2VecConfig(DictConfig):
    """The skip-gram model and its training (the checkpoint ``word2vec_world``'s values are
    the defaults); ``from_dict(manifest["config"]).to_dict() == manifest["config"]``. Bad
    values raise ONE line listing every problem."""

    #: the world's vocabulary size (checked against the tokenizer when training)
    vocab_size: int = WORLD_VOCAB_SIZE
    #: the word vectors' size
    dim: int = 64
    #: context words on each side of the centre word
    window: int = 3
    #: negatives per (centre, context) pair
    negatives: int = 5
    #: word2vec's subsampling threshold t (keep a word of frequency f with sqrt(t / f))
    subsample: float = 1e-3
    epochs: int = 4
    batch_size: int = 2048
    lr: float = 0.01
    seed: int = 0
    #: the captions trained on and the held-out captions (fresh scenes, other seeds)
    world: TrainWorld = TrainWorld(n=4000, seed=1101)
    val_world: TrainWorld = TrainWorld(n=500, seed=1102)

    def __post_init__(self) -> None:
        checks = Checks("Word2VecConfig")
        for name in ("vocab_size", "dim", "window", "negatives", "epochs", "batch_size"):
            checks(positive_int, getattr(self, name), name)
        checks(number, self.subsample, "subsample", low=0, low_open=True)
        check_rate(checks, self.lr, "lr")
        checks(integer, self.seed, "seed", low=0)
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        object.__setattr__(self, "val_world",
                           TrainWorld.coerce(self.val_world, checks, "val_world"))
        checks.done()


def word2vec_config(config: Word2VecConfig | Mapping[str, Any]) -> Word2VecConfig:
    """``config`` as a :class:`Word2VecConfig` (a checkpoint's config dict, or one already)."""
    return Word2VecConfig.from_dict(config)


class SkipGram(nn.Module):
    """Skip-gram with negative sampling (Mikolov et al. 2013): a word predicts the words
    around it. Two tables, ``inp`` (the word vectors we keep) and ``out`` (context vectors).

    Loss per (centre c, context o, negatives n_1..n_K):
    ``-log sigmoid(v_c . u_o) - sum_k log sigmoid(-v_c . u_{n_k})``, averaged over pairs.
    """

    def __init__(self, vocab_size: int, dim: int = 64) -> None:
        super().__init__()
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.inp = nn.Embedding(vocab_size, dim)
        self.out = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out.weight)

    def forward(self, centre: torch.Tensor, context: torch.Tensor,
                negatives: torch.Tensor) -> torch.Tensor:
        """Mean SGNS loss of int64 ``centre`` [B], ``context`` [B], ``negatives`` [B, K]."""
        v = self.inp(centre)                                   # [B, D]
        pos = (v * self.out(context)).sum(-1)                  # [B]
        neg = torch.einsum("bd,bkd->bk", v, self.out(negatives))
        return -(nn.functional.logsigmoid(pos) + nn.functional.logsigmoid(-neg).sum(-1)).mean()

    def vectors(self) -> np.ndarray:
        """The word vectors float32 [V, D] (rows follow the tokenizer's ids)."""
        return self.inp.weight.detach().cpu().numpy().astype(np.float32)


def skipgram_pairs(encoded: EncodedTexts, window: int) -> np.ndarray:
    """All (centre, context) id pairs int64 [P, 2] within ``window`` words of each other, in
    each text (padding never pairs)."""
    ids, lengths = encoded.ids.numpy(), encoded.lengths.numpy()
    out = []
    for d in range(1, window + 1):
        if ids.shape[1] <= d:
            break
        valid = np.arange(ids.shape[1] - d)[None, :] + d < lengths[:, None]
        a, b = ids[:, :-d][valid], ids[:, d:][valid]
        out += [np.stack([a, b], 1), np.stack([b, a], 1)]
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def _subsample(encoded: EncodedTexts, t: float, rng: np.random.Generator) -> EncodedTexts:
    """word2vec's subsampling of frequent words: keep a word of frequency f with probability
    min(1, sqrt(t / f)); the kept words close up (so the window reaches further)."""
    ids, lengths = encoded.ids.numpy(), encoded.lengths.numpy()
    real = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    counts = np.bincount(ids[real], minlength=int(ids.max()) + 1)
    freq = counts / max(1, counts.sum())
    keep_p = np.minimum(1.0, np.sqrt(t / np.maximum(freq, 1e-12)))
    keep = real & (rng.random(ids.shape) < keep_p[ids])
    new = np.zeros_like(ids)
    new_len = keep.sum(1)
    for i in range(len(ids)):
        new[i, :new_len[i]] = ids[i][keep[i]]
    return EncodedTexts(torch.from_numpy(new), torch.from_numpy(new_len.astype(np.int64)),
                        encoded.report)


def negative_table(encoded: EncodedTexts, vocab_size: int, power: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution float64 [V]: unigram counts ** ``power``, normalised
    (special tokens never drawn)."""
    ids, lengths = encoded.ids.numpy(), encoded.lengths.numpy()
    real = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    counts = np.bincount(ids[real], minlength=vocab_size).astype(np.float64)
    counts[:2] = 0
    p = counts ** power
    return p / p.sum()


def _captions(world_cfg: dict) -> list[str]:
    return World(**world_cfg).captions


def _build_word2vec(config: Word2VecConfig | Mapping[str, Any]) -> SkipGram:
    cfg = word2vec_config(config)
    return SkipGram(cfg.vocab_size, cfg.dim)


def _train_word2vec(config: Word2VecConfig | Mapping[str, Any], progress: bool) -> Trained:
    cfg = word2vec_config(config)
    with torch_threads(1):   # small models: one thread is faster on busy cores
        return _fit_word2vec(cfg, progress)


def _fit_word2vec(cfg: Word2VecConfig, progress: bool) -> Trained:
    tok = check_vocab(cfg.to_dict())
    device = pick_device()
    rng = seeded(cfg.seed)
    world, val_world = cfg.world.to_dict(), cfg.val_world.to_dict()
    train = tok.encode(_captions(world))
    val = tok.encode(_captions(val_world))
    table = torch.tensor(negative_table(train, tok.vocab_size), dtype=torch.float32)
    model = SkipGram(tok.vocab_size, cfg.dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    k, bs = cfg.negatives, cfg.batch_size

    val_pairs = torch.from_numpy(skipgram_pairs(val, cfg.window))
    g = torch.Generator().manual_seed(cfg.seed + 1)
    val_neg = torch.multinomial(table, len(val_pairs) * k, replacement=True,
                                generator=g).view(-1, k)
    first = heldout_loss(model, val_pairs, val_neg)
    log = LossLog()
    for _epoch in progress_bar(range(cfg.epochs), progress=progress, desc="word2vec epochs"):
        pairs = skipgram_pairs(_subsample(train, cfg.subsample, rng), cfg.window)
        pairs = torch.from_numpy(pairs[rng.permutation(len(pairs))])
        for s in range(0, len(pairs), bs):
            batch = pairs[s:s + bs]
            neg = torch.multinomial(table, len(batch) * k, replacement=True).view(-1, k)
            loss = model(batch[:, 0].to(device), batch[:, 1].to(device), neg.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.add(loss)
    model = model.cpu().eval()
    rate, chance = synonym_neighbour_rate(model.vectors(), tok)
    return Trained(model, metrics={
        "val_loss_before": round(first, 4),
        "val_loss": round(heldout_loss(model, val_pairs, val_neg), 4),
        **log.metrics("train_loss_first_100_steps", "train_loss_last_100_steps", 100),
        "synonym_nn_rate": round(rate, 4), "synonym_nn_chance": round(chance, 4)},
        data={"world": world, "val_world": val_world,
              "epochs": cfg.epochs, "steps": len(log),
              "captions": train.report.n, "vocabulary": "world (mmkit.data.vocab)"})


def heldout_loss(model: SkipGram, pairs: torch.Tensor, negatives: torch.Tensor) -> float:
    """SGNS loss of ``model`` on fixed (pairs [P, 2], negatives [P, K]), without gradient."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return float(model(pairs[:, 0].to(device), pairs[:, 1].to(device),
                           negatives.to(device)))


def nearest_words(vectors: np.ndarray, tokenizer: WordTokenizer, word: str,
                  k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` words closest to ``word`` by cosine (itself and special tokens excluded)."""
    i = tokenizer.id_of(word)
    if i == tokenizer.unk_id:
        raise InputError(f"{word!r} is not in the vocabulary")
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    s = x @ x[i]
    s[[0, 1, i]] = -np.inf
    top = np.argsort(-s, kind="stable")[:k]
    return [(tokenizer.words[j], float(s[j])) for j in top]


def synonym_groups() -> dict[str, list[list[str]]]:
    """The world's one-word synonyms by attribute (from :mod:`mmkit.data.vocab`):
    ``{"colour": [["red", "scarlet", "crimson"], ...], "shape": ..., "size": ...,
    "texture": ...}``. Multi-word phrases ("leafy green") are left out, and so is any word
    that appears in two groups; groups of one word are dropped."""
    tables = {"colour": V.COLOUR_WORDS, "shape": V.SHAPE_WORDS, "size": V.SIZE_WORDS,
              "texture": V.TEXTURE_ADJ}
    raw = {a: [[p for p in phrases if len(V.tokenize(p)) == 1] for phrases in t.values()]
           for a, t in tables.items()}
    seen: dict[str, int] = {}
    for groups in raw.values():
        for g in groups:
            for w in g:
                seen[w] = seen.get(w, 0) + 1
    out = {}
    for a, groups in raw.items():
        kept = [[w for w in g if seen[w] == 1] for g in groups]
        out[a] = [g for g in kept if len(g) >= 2]
    return out


def synonym_neighbour_rate(vectors: np.ndarray, tokenizer: WordTokenizer,
                           groups: dict[str, list[list[str]]] | None = None,
                           k: int = 1) -> tuple[float, float]:
    """Do synonyms cluster? Over every word of :func:`synonym_groups`, the fraction with a
    synonym among its ``k`` nearest neighbours (cosine, among all the groups' words, itself
    excluded; ties by word order); and that fraction for ``k`` random neighbours (chance:
    the mean over words of 1 - C(others - syn, k) / C(others, k), which for ``k = 1`` is
    (group size - 1) / (words - 1)). Returns (rate, chance)."""
    groups = synonym_groups() if groups is None else groups
    words, group_of = [], []
    for a, gs in groups.items():
        for gi, g in enumerate(gs):
            for w in g:
                words.append(w)
                group_of.append((a, gi))
    ids = [tokenizer.id_of(w) for w in words]
    x = vectors[ids]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hit = [any(group_of[j] == group_of[i] for j in row) for i, row in enumerate(top)]
    sizes: dict[tuple[str, int], int] = {}
    for gkey in group_of:
        sizes[gkey] = sizes.get(gkey, 0) + 1
    others = len(words) - 1
    chance = np.mean([1 - comb(others - (sizes[g] - 1), k) / comb(others, k) for g in group_of])
    return float(np.mean(hit)), float(chance)


def mean_word_vectors(vectors: np.ndarray, encoded: EncodedTexts) -> np.ndarray:
    """Sentence embeddings float32 [N, D]: the mean of the word vectors of each text
    (padding excluded); an empty text gets the zero vector."""
    ids, lengths = encoded.ids.numpy(), encoded.lengths.numpy()
    mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
    summed = np.einsum("nl,nld->nd", mask, vectors[ids])
    return (summed / np.maximum(lengths, 1)[:, None]).astype(np.float32)



CHECKPOINTS: dict[str, CheckpointSpec] = {
    "word2vec_world": CheckpointSpec(
        name="word2vec_world", build=_build_word2vec, train=_train_word2vec,
        config=Word2VecConfig().to_dict(), seconds=20,
        description="skip-gram word vectors (64-d, negative sampling) on world captions"),
}

__all__ = ["Word2VecConfig", "word2vec_config", "SkipGram", "skipgram_pairs", "negative_table",
           "heldout_loss", "nearest_words", "synonym_groups", "synonym_neighbour_rate",
           "mean_word_vectors", "CHECKPOINTS"]
