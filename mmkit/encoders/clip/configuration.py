"""The configuration of the CLIP-style models: transformers' ``CLIPConfig`` built small, and
:class:`ClipStyleConfig`, the ``clip_world`` checkpoint's config (frozen, validated, its
defaults written once).

- :func:`small_clip_config`: a small ``CLIPConfig`` whose text side fits a tokenizer (its
  vocabulary size and bos / eos / pad ids);
- :class:`ClipStyleConfig`: model size, tokenizer and training of a world-trained CLIP;
  :meth:`ClipStyleConfig.clip_config` is its ``CLIPConfig``;
- :func:`check_fits` / :func:`check_pretrained_fits`: does a tokenizer fit a ``CLIPConfig``
  (transformers' CLIP text tower pools at the FIRST ``eos_token_id``, or at the largest id
  when ``eos_token_id == 2``, a legacy rule).

transformers is imported when a function needs it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmkit.encoders.clip.tokenization import MIN_VOCAB, SPECIALS
from mmkit.configs import Checks, DictConfig, check_rate, counts
from mmkit.errors import InputError
from mmkit.scoring import EVAL_WORLD
from mmkit.validate import integer, is_integer, number, positive_int

__all__ = ["ClipStyleConfig", "clip_style_config", "small_clip_config", "check_fits",
           "check_pretrained_fits"]


def small_clip_config(tokenizer, image_size: int = 64, patch_size: int = 8, hidden: int = 96,
                      layers: int = 4, heads: int = 4, projection_dim: int = 64,
                      text_hidden: int | None = None, text_layers: int | None = None,
                      max_positions: int | None = None):
    """A small ``CLIPConfig`` whose text side fits ``tokenizer``.

    Vision: ``image_size`` px images cut into ``patch_size`` px patches, ``layers`` blocks of
    width ``hidden`` with ``heads`` heads (MLP 4x); text: ``text_layers`` / ``text_hidden``
    (default: the vision values), ``max_positions`` positions (default: the tokenizer's
    ``model_max_length``); both projected to ``projection_dim``. The vocabulary size and the
    bos / eos / pad ids are the tokenizer's (CLIP's text tower pools at the first eos).

    Raises:
        InputError: a tokenizer with eos id 2 (transformers then pools at the largest id, a
            legacy rule) or an unusable size.
    """
    size = len(tokenizer)
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    if size <= len(SPECIALS) or None in ids:
        raise InputError(f"small_clip_config: the tokenizer has {size} tokens and bos/eos/pad "
                         f"ids {ids} (an empty tokenizer?)")
    if ids[1] == 2:
        raise InputError("small_clip_config: eos_token_id 2 makes transformers' CLIP pool at "
                         "the largest token id instead of the eos; put eos elsewhere")
    return _make_config(size, ids, int(max_positions or tokenizer.model_max_length),
                        image_size, patch_size, hidden, layers, heads, projection_dim,
                        text_hidden or hidden, text_layers or layers)


def _make_config(vocab_size: int, ids: tuple, positions: int, image_size: int,
                 patch_size: int, hidden: int, layers: int, heads: int, projection_dim: int,
                 text_hidden: int, text_layers: int):
    from transformers import CLIPConfig

    if image_size % patch_size:
        raise InputError(f"small_clip_config: image_size {image_size} is not a multiple of "
                         f"patch_size {patch_size}")
    if hidden % heads or text_hidden % heads:
        raise InputError(f"small_clip_config: widths {hidden}/{text_hidden} not divisible by "
                         f"{heads} heads")
    text = dict(vocab_size=int(vocab_size), hidden_size=text_hidden,
                intermediate_size=4 * text_hidden, num_hidden_layers=text_layers,
                num_attention_heads=heads, max_position_embeddings=int(positions),
                bos_token_id=ids[0], eos_token_id=ids[1], pad_token_id=ids[2])
    vision = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


@dataclass(frozen=True)
class ClipStyleConfig(DictConfig):
    """A world-trained CLIP (the defaults: the ``clip_world`` checkpoint's config).

    ``ClipStyleConfig.from_dict(manifest["config"]).to_dict()`` is the manifest's config; bad
    values raise ONE line listing every problem. The tokenizer's ids are bos 0, eos 1, pad 2
    (what :func:`~mmkit.encoders.clip.tokenization.train_caption_tokenizer` gives).
    """

    #: the BPE trainer's vocabulary size (:func:`train_caption_tokenizer`'s ``vocab_size``)
    bpe_vocab: int = 800
    #: the trained tokenizer's size (with every word-final byte: at least 515), the text
    #: tower's vocabulary
    vocab_size: int = 1031
    #: the text tower's positions (captions longer than this are cut)
    max_length: int = 64
    #: capacity of the ``tokenizer_json`` buffer that holds the tokenizer in the state dict
    tokenizer_bytes: int = 32768
    #: vision: ``image_size`` px images in ``patch_size`` px patches
    image_size: int = 64
    patch_size: int = 8
    #: both towers: ``layers`` blocks of width ``hidden`` with ``heads`` heads (MLP 4x)
    hidden: int = 96
    layers: int = 3
    heads: int = 4
    #: the joint space's dimension
    projection_dim: int = 64
    #: training scenes: ``World(n=n_train, seed=world_seed)``; held-out validation scenes:
    #: ``World(n=n_val, seed=world_seed + 1)`` (neither is the evaluation world)
    n_train: int = 5000
    world_seed: int = 1500
    n_val: int = 600
    steps: int = 500
    #: distinct scenes per step (at most ``n_train``)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    #: linear warm-up steps before the cosine decay (at most ``steps``)
    warmup: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        checks = Checks("ClipStyleConfig")
        checks(integer, self.bpe_vocab, "bpe_vocab", low=len(SPECIALS) + 256)
        checks(integer, self.vocab_size, "vocab_size", low=MIN_VOCAB)
        checks(integer, self.max_length, "max_length", low=2)
        for name in ("tokenizer_bytes", "image_size", "patch_size", "hidden", "layers",
                     "heads", "projection_dim", "n_train", "n_val", "steps", "batch_size"):
            checks(positive_int, getattr(self, name), name)
        if counts(self, "image_size", "patch_size") and self.image_size % self.patch_size:
            checks.add(f"image_size {self.image_size} is not a multiple of patch_size "
                       f"{self.patch_size}")
        if counts(self, "hidden", "heads") and self.hidden % self.heads:
            checks.add(f"hidden {self.hidden} is not divisible by {self.heads} heads")
        if counts(self, "batch_size", "n_train") and self.batch_size > self.n_train:
            checks.add(f"batch_size {self.batch_size} exceeds n_train {self.n_train} "
                       "(each step draws distinct scenes)")
        checks(integer, self.world_seed, "world_seed", low=0)
        if self.world_seed == EVAL_WORLD["seed"]:
            checks.add(f"world_seed {self.world_seed} is the evaluation world's; train on "
                       "fresh scenes of another seed")
        check_rate(checks, self.lr, "lr")
        checks(number, self.weight_decay, "weight_decay", low=0)
        checks(integer, self.warmup, "warmup", low=0)
        if counts(self, "steps") and is_integer(self.warmup) and self.warmup > self.steps:
            checks.add(f"warmup {self.warmup} exceeds steps {self.steps}")
        checks(integer, self.seed, "seed", low=0)
        checks.done()

    def clip_config(self):
        """The ``transformers.CLIPConfig`` of this config (bos 0, eos 1, pad 2: the ids
        :func:`~mmkit.encoders.clip.tokenization.train_caption_tokenizer` gives)."""
        return _make_config(self.vocab_size, (0, 1, 2), self.max_length, self.image_size,
                            self.patch_size, self.hidden, self.layers, self.heads,
                            self.projection_dim, self.hidden, self.layers)


def clip_style_config(config: ClipStyleConfig | Mapping[str, Any]) -> ClipStyleConfig:
    """``config`` as a :class:`ClipStyleConfig` (a checkpoint's config dict, or one already)."""
    return ClipStyleConfig.from_dict(config)


def check_fits(config, tokenizer) -> None:
    """Raise a one-line :class:`InputError` unless ``config`` (a ``CLIPConfig``) has the
    tokenizer's vocabulary size and bos/eos/pad ids."""
    tc = config.text_config
    want = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    bad = [f"{k} {getattr(tc, k)} (tokenizer: {v})" for k, v in want.items()
           if getattr(tc, k) != v]
    if bad:
        raise InputError("CLIP text config does not fit the tokenizer: " + ", ".join(bad))


def check_pretrained_fits(config, tokenizer) -> None:
    """Raise a one-line :class:`InputError` unless a pretrained ``config`` (a ``CLIPConfig``)
    can embed what ``tokenizer`` writes: no token id beyond the model's vocabulary, and the
    text tower pools at the tokenizer's eos. The hub's CLIP keeps the legacy ids bos 0, eos 2,
    pad 1 in its config; transformers then pools at the largest id of each sequence, which
    must be the tokenizer's eos."""
    tc = config.text_config
    size, eos = len(tokenizer), tokenizer.eos_token_id
    if size > tc.vocab_size:
        raise InputError(f"the CLIP tokenizer has {size} tokens but the model's text config "
                         f"only {tc.vocab_size}")
    if tc.eos_token_id == 2:
        if eos != max(tokenizer.get_vocab().values()):
            raise InputError(f"this CLIP pools at the largest token id (legacy eos_token_id 2 "
                             f"in its config) but its tokenizer's eos {eos} is not the largest")
    elif tc.eos_token_id != eos:
        raise InputError(f"this CLIP pools at token id {tc.eos_token_id} but its tokenizer's "
                         f"eos is {eos}")
