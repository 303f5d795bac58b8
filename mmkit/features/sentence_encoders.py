"""Sentence encoders trained on the world's captions: a GRU or an LSTM over word embeddings.

:class:`GRUTextEncoder` and :class:`LSTMTextEncoder` (``forward(ids [N, L], lengths [N]) ->
[N, out_dim]``, bidirectional option; :meth:`~RecurrentTextEncoder.embed_texts` for texts)
are trained with a contrastive objective (:func:`info_nce`): two captions of the same image
should be each other's nearest neighbour within a batch.

Their config is :class:`SentenceEncoderConfig`. The trained models are the checkpoints
``gru_text`` and ``lstm_text`` (:data:`CHECKPOINTS`,
``mmkit.checkpoints.load(NAME)``), trained on captions of fresh worlds (seeds 1201-1302),
never on the seed-0 evaluation world. Their vocabulary is the world's closed vocabulary
(:meth:`WordTokenizer.world`), so a checkpoint and its vocabulary cannot drift apart; words
outside it map to ``[UNK]``. The pretrained MiniLM sentence encoder is in
:mod:`mmkit.features.minilm`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit._setup import pick_device
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate
from mmkit.data import World
from mmkit.errors import InputError
from mmkit.features._training import WORLD_VOCAB_SIZE, check_vocab
from mmkit.features.text import (WordTokenizer, cosine_scores, text_retrieval_metrics,
                                 text_text_ground_truth)
from mmkit.training import LossLog, progress_bar, seeded, torch_threads
from mmkit.validate import integer, number, positive_int


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


@dataclass(frozen=True)
class SentenceEncoderConfig(DictConfig):
    """A recurrent sentence encoder and its contrastive training (the defaults: the
    checkpoint ``gru_text``'s values; ``lstm_text`` differs in its worlds).
    ``from_dict(manifest["config"]).to_dict() == manifest["config"]``. Bad values raise ONE
    line listing every problem."""

    #: the world's vocabulary size (checked against the tokenizer when training)
    vocab_size: int = WORLD_VOCAB_SIZE
    #: word embedding size, recurrent width, output size
    embed_dim: int = 64
    hidden: int = 128
    out_dim: int = 128
    bidirectional: bool = True
    #: training steps of ``batch_size`` images (two captions of each)
    steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
    #: InfoNCE's temperature
    temperature: float = 0.1
    seed: int = 0
    #: the captions trained on and the held-out captions (fresh scenes, other seeds)
    world: TrainWorld = TrainWorld(n=4000, seed=1201)
    val_world: TrainWorld = TrainWorld(n=500, seed=1202)

    def __post_init__(self) -> None:
        checks = Checks("SentenceEncoderConfig")
        for name in ("vocab_size", "embed_dim", "hidden", "out_dim", "steps", "batch_size"):
            checks(positive_int, getattr(self, name), name)
        checks.flag(self.bidirectional, "bidirectional")
        check_rate(checks, self.lr, "lr")
        checks(number, self.temperature, "temperature", low=0, low_open=True)
        checks(integer, self.seed, "seed", low=0)
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        object.__setattr__(self, "val_world",
                           TrainWorld.coerce(self.val_world, checks, "val_world"))
        if isinstance(self.world, TrainWorld) and isinstance(self.batch_size, int) \
                and self.batch_size > self.world.n:
            checks.add(f"batch_size {self.batch_size} exceeds the training world's "
                       f"{self.world.n} images")
        checks.done()


def sentence_config(config: SentenceEncoderConfig | Mapping[str, Any]) -> SentenceEncoderConfig:
    """``config`` as a :class:`SentenceEncoderConfig` (a checkpoint's config dict, or one
    already)."""
    return SentenceEncoderConfig.from_dict(config)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows a [B, D], b [B, D] (row i of a belongs with row i of
    b; every other row of the batch is a negative), on L2-normalised vectors."""
    a, b = nn.functional.normalize(a, dim=-1), nn.functional.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target)
                  + nn.functional.cross_entropy(logits.T, target))


def _build_recurrent(cls: type[RecurrentTextEncoder]):
    def build(config: SentenceEncoderConfig | Mapping[str, Any]) -> RecurrentTextEncoder:
        cfg = sentence_config(config)
        model = cls(cfg.vocab_size, cfg.embed_dim, cfg.hidden, cfg.out_dim, cfg.bidirectional)
        model.tokenizer = WordTokenizer.world()
        return model
    return build


def same_image_map(model: RecurrentTextEncoder, world: World) -> dict[str, float]:
    """Text -> text retrieval of every caption of ``world`` among its others (see
    :func:`mmkit.features.text.text_retrieval_metrics`)."""
    ids = np.arange(len(world.captions))
    grades, positives = text_text_ground_truth(world, ids)
    scores = cosine_scores(model.embed_texts(world.captions))
    return text_retrieval_metrics(scores, grades, positives)


def _train_recurrent(cls: type[RecurrentTextEncoder]):
    def train(config: SentenceEncoderConfig | Mapping[str, Any], progress: bool) -> Trained:
        cfg = sentence_config(config)
        with torch_threads(1):   # small models: one thread is faster on busy cores
            return fit(cfg, progress)

    def fit(cfg: SentenceEncoderConfig, progress: bool) -> Trained:
        tok = check_vocab(cfg.to_dict())
        device = pick_device()
        rng = seeded(cfg.seed)
        world = World(**cfg.world.to_dict())
        val_world = World(**cfg.val_world.to_dict())
        enc = tok.encode(world.captions)
        per = world.config.captions_per_image
        model = _build_recurrent(cls)(cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        before = same_image_map(model.cpu(), val_world)
        model.to(device).train()
        log = LossLog()
        for _step in progress_bar(range(cfg.steps), progress=progress,
                                  desc=f"{cls.cell} steps"):
            images = rng.choice(world.config.n, cfg.batch_size, replace=False)
            pick = np.stack([rng.choice(per, 2, replace=False) for _ in images])
            ja, jb = images * per + pick[:, 0], images * per + pick[:, 1]
            width_a = max(1, int(enc.lengths[ja].max()))
            width_b = max(1, int(enc.lengths[jb].max()))
            za = model(enc.ids[ja, :width_a].to(device), enc.lengths[ja])
            zb = model(enc.ids[jb, :width_b].to(device), enc.lengths[jb])
            loss = info_nce(za, zb, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.add(loss)
        model = model.cpu().eval()
        after = same_image_map(model, val_world)
        return Trained(model, metrics={
            **log.metrics("train_loss_first_20_steps", "train_loss_last_20_steps", 20),
            "val_map_before": round(before["mAP"], 4), "val_map": round(after["mAP"], 4),
            "val_ndcg10": round(after["NDCG@10"], 4)},
            data={"world": cfg.world.to_dict(), "val_world": cfg.val_world.to_dict(),
                  "steps": cfg.steps, "batch_size": cfg.batch_size,
                  "objective": "InfoNCE between two captions of the same image",
                  "vocabulary": "world (mmkit.data.vocab)"})
    return train



CHECKPOINTS: dict[str, CheckpointSpec] = {
    "gru_text": CheckpointSpec(
        name="gru_text", build=_build_recurrent(GRUTextEncoder),
        train=_train_recurrent(GRUTextEncoder), seconds=120,
        config=SentenceEncoderConfig().to_dict(),
        description="biGRU sentence encoder (128-d), contrastive on captions of one image"),
    "lstm_text": CheckpointSpec(
        name="lstm_text", build=_build_recurrent(LSTMTextEncoder),
        train=_train_recurrent(LSTMTextEncoder), seconds=150,
        config=SentenceEncoderConfig(world=TrainWorld(n=4000, seed=1301),
                                     val_world=TrainWorld(n=500, seed=1302)).to_dict(),
        description="biLSTM sentence encoder (128-d), contrastive on captions of one image"),
}

__all__ = ["SentenceEncoderConfig", "sentence_config", "RecurrentTextEncoder", "GRUTextEncoder",
           "LSTMTextEncoder", "info_nce", "same_image_map", "CHECKPOINTS"]
