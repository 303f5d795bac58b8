"""A CLIP-style model built with transformers' own ``CLIPModel`` class, small, trained on the
world; and the same wrapper around a pretrained CLIP loaded with ``from_pretrained``.

The point for notebook 04: the class that loads ``openai/clip-vit-base-patch32`` is the class
trained here. Only its size differs (a ``CLIPConfig`` of a few layers instead of twelve) and
its tokenizer, which is trained offline on world captions with the ``tokenizers`` library in
exactly CLIP's format (lower-cased byte-level BPE with the ``</w>`` end-of-word suffix).

- :func:`train_caption_tokenizer`: captions -> ``CLIPTokenizer`` (bos ``<|startoftext|>`` = 0,
  eos ``<|endoftext|>`` = 1, pad ``<|pad|>`` = 2); deterministic; every byte and its word-final
  form is in the vocabulary, so no text ever falls back to the unknown token.
- :func:`small_clip_config` / :func:`build_clip`: a ``CLIPConfig`` whose vocabulary size and
  bos/eos/pad ids are the tokenizer's, and the random ``CLIPModel``.
- :class:`ClipStyle`: ``embed_images(uint8 [N, H, W, 3]) -> float32 [N, d]`` and
  ``embed_texts(list[str]) -> float32 [N, d]`` (L2-normalised, batched, no gradient) through
  ``get_image_features`` / ``get_text_features``.
- :func:`train_clip_style` (checkpoint ``clip_world`` in :data:`CHECKPOINTS`): contrastive
  training with ``CLIPModel(return_loss=True)`` on fresh scenes of seed 1500.
- :func:`load_pretrained_clip`: the same :class:`ClipStyle` around
  :func:`mmkit.methods.clip.load_clip` (a local folder, or the hub when online).

**Where the tokenizer lives in the checkpoint.** The checkpoint rule builds the model from its
config before the weights are loaded, without the training world. The tokenizer (its tokens in
id order and its merges, compact UTF-8 JSON, about 10 kB) is therefore stored in the state
dict itself: a uint8 buffer ``tokenizer_json`` of fixed capacity (config ``tokenizer_bytes``),
zero-padded. Loading the weights loads the tokenizer; the sha256 of the safetensors file covers
it; nothing else needs to travel with the model. :meth:`ClipStyle.save_pretrained` writes the
usual Hugging Face folder (model, tokenizer, image processor) instead.

transformers 5 traps handled: a tokenizer is checked for its vocabulary size (an offline load
can silently give an empty one); the text tower pools at the FIRST ``eos_token_id`` of each
sequence (and at the largest id when ``eos_token_id == 2``, a legacy rule), so the config's
ids must be the tokenizer's and eos must not be 2 (:func:`small_clip_config` refuses
otherwise); ``get_*_features`` return an output object (:func:`mmkit.methods.clip.feature_tensor`
reads its ``pooler_output``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.errors import InputError

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<|pad|>"
#: the special tokens, in id order (bos 0, eos 1, pad 2)
SPECIALS = (BOS, EOS, PAD)
#: CLIP's end-of-word suffix: ``"red</w>"`` is the word "red", ``"red"`` a word's beginning
SUFFIX = "</w>"


def _device() -> str:
    from mmkit._setup import pick_device

    return pick_device()


def _bar(iterable, progress: bool, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not progress, leave=False, **kwargs)


# =============================================================================== tokenizer
def _clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int):
    """A transformers ``CLIPTokenizer`` over ``vocab`` / ``merges``; its size and special ids
    checked (the offline-empty-tokenizer trap)."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m) for m in merges], pad_token=PAD,
                        model_max_length=int(max_length))
    if len(tok) != len(vocab) or tok.vocab_size != len(vocab):
        raise InputError(f"CLIP tokenizer came back with {len(tok)} tokens, expected "
                         f"{len(vocab)} (an empty or broken vocabulary)")
    ids = (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    if ids != (0, 1, 2):
        raise InputError(f"CLIP tokenizer: bos/eos/pad ids are {ids}, expected (0, 1, 2)")
    return tok


def train_caption_tokenizer(captions: Sequence[str], vocab_size: int = 600,
                            max_length: int = 48):
    """Train CLIP's kind of tokenizer on ``captions`` with the ``tokenizers`` library, offline.

    CLIP's own normaliser (NFC, whitespace squashed, lower case) and pre-tokeniser (its word
    regex, then byte-level) are taken from transformers' ``CLIPTokenizer``; a byte-pair
    ``BpeTrainer`` learns merges until its vocabulary holds ``vocab_size`` entries (the three
    specials, the 256 byte symbols, the word-final symbols that occur, the merged pieces; the
    world's closed vocabulary saturates near 940). The final vocabulary is numbered
    canonically: specials (0-2), the 256 bytes, ALL 256 word-final bytes (``"q</w>"``, as in
    CLIP's vocabulary: any text, even with letters the world never uses, is tokenised without
    the unknown token, which is CLIP's eos and would move the pooling position), then the
    merge products in merge order. So ``len(tokenizer) >= vocab_size``.

    Deterministic: the same captions and ``vocab_size`` give the same vocabulary, ids and
    merges (the trainer's merges are reproducible; its own ids of the word-final symbols
    follow hash-map order and are therefore not used).

    Returns:
        a ``transformers.CLIPTokenizer`` with bos ``<|startoftext|>`` = 0, eos
        ``<|endoftext|>`` = 1, pad ``<|pad|>`` = 2, ``model_max_length = max_length``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = [str(c) for c in captions]
    if not texts:
        raise InputError("train_caption_tokenizer: no captions")
    if int(vocab_size) < len(SPECIALS) + 256:
        raise InputError(f"train_caption_tokenizer: vocab_size must be at least "
                         f"{len(SPECIALS) + 256} (specials + bytes), got {vocab_size}")
    template = _clip_tokenizer({s: i for i, s in enumerate(SPECIALS)}, [], max_length)
    backend = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix=SUFFIX,
                                   continuing_subword_prefix=""))
    backend.normalizer = template.backend_tokenizer.normalizer
    backend.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=list(SPECIALS),
                                  initial_alphabet=alphabet, end_of_word_suffix=SUFFIX,
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # canonical ids: the trainer numbers the word-final symbols in hash-map order, which
    # changes from run to run (its merges do not); renumber: specials, bytes, word-final
    # bytes, then each merge's product in merge order
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for piece in [*alphabet, *(ch + SUFFIX for ch in alphabet), *(a + b for a, b in merges)]:
        vocab.setdefault(piece, len(vocab))
    lost = sorted(set(model["vocab"]) - set(vocab))
    if lost:
        raise InputError(f"train_caption_tokenizer: {len(lost)} trained tokens are neither "
                         f"bytes nor merge products (first: {lost[0]!r})")
    return _clip_tokenizer(vocab, merges, max_length)


def tokenizer_to_json(tokenizer) -> str:
    """The tokenizer as compact JSON: ``{"tokens": [...in id order], "merges": [[a, b], ...],
    "max_length": L}`` (what the checkpoint stores)."""
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise InputError("tokenizer_to_json: the vocabulary ids are not 0..V-1")
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m.split(" ") if isinstance(m, str) else list(m) for m in merges]
    return json.dumps({"tokens": tokens, "merges": merges,
                       "max_length": int(tokenizer.model_max_length)},
                      ensure_ascii=False, separators=(",", ":"))


def tokenizer_from_json(text: str):
    """The ``CLIPTokenizer`` of :func:`tokenizer_to_json`'s output (sizes checked)."""
    try:
        data = json.loads(text)
        tokens, merges, max_length = data["tokens"], data["merges"], data["max_length"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError("the stored CLIP tokenizer is not readable JSON of tokens and "
                         "merges") from None
    return _clip_tokenizer({t: i for i, t in enumerate(tokens)}, merges, max_length)


# ================================================================================= config
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


def build_clip(config) -> nn.Module:
    """A randomly initialised ``transformers.CLIPModel`` of ``config`` (seed it yourself)."""
    from transformers import CLIPModel

    return CLIPModel(config)


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


def image_processor(image_size: int):
    """CLIP's image preprocessing at ``image_size`` px (resize the short side, centre crop,
    scale to [0, 1], normalise with CLIP's mean and std): a ``CLIPImageProcessor``."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": int(image_size)},
                              crop_size={"height": int(image_size), "width": int(image_size)})


# ================================================================================ wrapper
def _check_images(images) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise InputError(f"CLIP images must be uint8 [N, H, W, 3], got {x.dtype} {x.shape}")
    return x


class ClipStyle(nn.Module):
    """A ``CLIPModel`` with its tokenizer and image processor: one joint space for images and
    captions.

    Args:
        model: a ``transformers.CLIPModel``.
        tokenizer: its tokenizer (``None``: read from the ``tokenizer_json`` buffer, e.g. after
            loading a checkpoint).
        processor: its image processor (``None``: :func:`image_processor` at the model's
            image size).
        tokenizer_bytes: capacity of the ``tokenizer_json`` buffer (uint8, zero-padded), the
            tokenizer's home inside the state dict; 0 for a pretrained model.

    ``embed_images`` / ``embed_texts`` return L2-normalised float32 [N, projection_dim],
    batched, without gradient, on the model's device (CPU fallback: wherever the parameters
    are).
    """

    def __init__(self, model: nn.Module, tokenizer=None, processor=None,
                 tokenizer_bytes: int = 0) -> None:
        super().__init__()
        self.clip = model
        self.register_buffer("tokenizer_json", torch.zeros(int(tokenizer_bytes),
                                                           dtype=torch.uint8))
        self.processor = processor or image_processor(model.config.vision_config.image_size)
        self._tokenizer = None
        if tokenizer is not None:
            self.set_tokenizer(tokenizer)
        self.register_load_state_dict_post_hook(lambda module, keys: module._forget())

    def _forget(self) -> None:
        if len(self.tokenizer_json):
            self._tokenizer = None        # re-read from the freshly loaded buffer

    def set_tokenizer(self, tokenizer) -> None:
        """Attach ``tokenizer`` (checked against the model's config) and, when the buffer has
        capacity, store it there as JSON."""
        check_fits(self.clip.config, tokenizer)
        if len(self.tokenizer_json):
            blob = tokenizer_to_json(tokenizer).encode("utf-8")
            if len(blob) > len(self.tokenizer_json):
                raise InputError(f"the tokenizer needs {len(blob)} bytes but the checkpoint "
                                 f"holds {len(self.tokenizer_json)} (raise tokenizer_bytes)")
            data = torch.zeros_like(self.tokenizer_json)
            data[:len(blob)] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            self.tokenizer_json.copy_(data)
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        """The ``CLIPTokenizer`` (from the state dict's buffer when not given)."""
        if self._tokenizer is None:
            raw = bytes(self.tokenizer_json.cpu().numpy()).rstrip(b"\0")
            if not raw:
                raise InputError("this CLIP model has no tokenizer yet (train it, load a "
                                 "checkpoint, or call set_tokenizer)")
            tok = tokenizer_from_json(raw.decode("utf-8"))
            check_fits(self.clip.config, tok)
            self._tokenizer = tok
        return self._tokenizer

    @property
    def dim(self) -> int:
        """The joint space's dimension (``projection_dim``)."""
        return int(self.clip.config.projection_dim)

    @property
    def image_size(self) -> int:
        return int(self.clip.config.vision_config.image_size)

    def _device(self):
        return next(self.clip.parameters()).device

    def pixel_values(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> float32 [N, 3, S, S], CLIP's preprocessing (CPU)."""
        x = _check_images(images)
        if not len(x):
            return torch.zeros((0, 3, self.image_size, self.image_size))
        batch = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
        return self.processor(images=batch, return_tensors="pt")["pixel_values"].float()

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Texts -> ``input_ids`` / ``attention_mask`` int64 [N, L] (padded to the longest,
        cut at the model's positions, eos always kept)."""
        if isinstance(texts, str):
            raise InputError("embed_texts takes a list of strings, got one string")
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InputError(f"text {bad} is {type(texts[bad]).__name__}, not str")
        limit = int(self.clip.config.text_config.max_position_embeddings)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=limit,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _run(self, n: int, batch_size: int, encode) -> np.ndarray:
        from mmkit.methods.clip import feature_tensor

        out = []
        was = self.training
        self.eval()
        with torch.no_grad():
            for s in range(0, n, batch_size):
                z = feature_tensor(encode(s, min(n, s + batch_size))).float()
                out.append(nn.functional.normalize(z, dim=-1).cpu().numpy())
        self.train(was)
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim),
                                                                            np.float32)

    def embed_images(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d], L2-normalised (preprocessed batch by batch,
        so a large N at 224 px never holds all pixel tensors at once)."""
        x = _check_images(images)
        dev = self._device()
        return self._run(len(x), batch_size, lambda a, b: self.clip.get_image_features(
            pixel_values=self.pixel_values(x[a:b]).to(dev)))

    def embed_texts(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """M strings -> float32 [M, d], L2-normalised."""
        if isinstance(texts, str):
            raise InputError("embed_texts takes a list of strings, got one string")
        texts = list(texts)
        dev = self._device()

        def encode(a: int, b: int):
            enc = self.tokenize(texts[a:b])
            return self.clip.get_text_features(input_ids=enc["input_ids"].to(dev),
                                               attention_mask=enc["attention_mask"].to(dev))

        return self._run(len(texts), batch_size, encode)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face CLIP folder (``config.json``, ``model.safetensors``, tokenizer
        and processor files) that :func:`load_pretrained_clip` and ``CLIPModel.from_pretrained``
        read."""
        from transformers import CLIPProcessor

        folder = Path(folder)
        self.clip.save_pretrained(folder)
        CLIPProcessor(image_processor=self.processor, tokenizer=self.tokenizer).save_pretrained(
            folder)
        return folder


def load_pretrained_clip(name_or_path: str | Path, device: str | None = None) -> ClipStyle:
    """A pretrained CLIP (e.g. a folder holding ``openai/clip-vit-base-patch32``, or the hub
    name when online) in the same :class:`ClipStyle` wrapper as the world-trained model.

    Loading is :func:`mmkit.methods.clip.load_clip` (offline: a missing folder is one line
    naming what to fetch; an empty tokenizer is refused).
    """
    from mmkit.methods.clip import load_clip

    model, processor = load_clip(name_or_path, device or _device())
    return ClipStyle(model, processor.tokenizer, processor.image_processor).eval()


# ============================================================================ evaluation
def retrieval_metrics(model: ClipStyle, world, images: np.ndarray,
                      directions: Sequence[str] = ("text->image", "image->text"),
                      batch_size: int = 256) -> dict[str, dict[str, float]]:
    """The demo's metrics (R@1/5/10, mAP, NDCG@10) of ``model`` over ``images`` (indices of
    ``world``), per direction, via :func:`mmkit.methods.evaluate.score_direction`."""
    from mmkit.methods.evaluate import Embedded, score_direction, score_metrics

    images = np.asarray(images)
    memo: dict[str, np.ndarray] = {}
    out = {}
    for name in directions:
        qids, gids = world.direction_ids(name, images)
        sides = []
        for ids, modality in ((qids, name.split("->")[0]), (gids, name.split("->")[1])):
            if modality not in memo:
                if modality == "image":
                    memo[modality] = model.embed_images(world.images[ids], batch_size)
                elif modality == "text":
                    memo[modality] = model.embed_texts([world.captions[j] for j in ids],
                                                       2 * batch_size)
                else:
                    raise InputError(f"retrieval_metrics: {name} is not an image/text "
                                     "direction")
            sides.append(Embedded(memo[modality], ids))
        run = score_direction(world, name, images, sides[0], sides[1])
        out[name] = score_metrics(run.scores, run.relevance, run.positives)
    return out


# ============================================================================== training
def _world(n: int, seed: int):
    from mmkit.data import World

    return World(n=int(n), seed=int(seed), progress=False)


def _clip_config(config: dict):
    """The ``CLIPConfig`` of a ``clip_world``-style dict (bos 0, eos 1, pad 2: the ids
    :func:`train_caption_tokenizer` gives)."""
    return _make_config(config["vocab_size"], (0, 1, 2), config["max_length"],
                        config["image_size"], config["patch_size"], config["hidden"],
                        config["layers"], config["heads"], config["projection_dim"],
                        config["hidden"], config["layers"])


def build_clip_style(config: dict) -> ClipStyle:
    """The untrained :class:`ClipStyle` of a ``clip_world``-style config dict (no tokenizer
    yet: training attaches it, loading a checkpoint reads it from the weights)."""
    return ClipStyle(build_clip(_clip_config(config)),
                     tokenizer_bytes=config["tokenizer_bytes"])


def _val_metrics(model: ClipStyle, world) -> dict[str, float]:
    m = retrieval_metrics(model, world, np.flatnonzero(world.split != "unseen"))
    return {"t2i_R@1": m["text->image"]["R@1"], "i2t_R@1": m["image->text"]["R@1"],
            "t2i_mAP": m["text->image"]["mAP"], "i2t_mAP": m["image->text"]["mAP"]}


def train_clip_style(config: dict, progress: bool = True) -> Trained:
    """Train a small ``CLIPModel`` contrastively on fresh scenes.

    Scenes: ``World(n=n_train, seed=world_seed)`` (all of them; never the seed-0 evaluation
    world). The tokenizer is trained on their captions first (:func:`train_caption_tokenizer`;
    its size must be the config's ``vocab_size``). Each step draws ``batch_size`` distinct
    images and ONE of each image's captions, so the diagonal InfoNCE of
    ``CLIPModel(..., return_loss=True)`` (row i's caption belongs to image i, every other
    image of the batch is a negative) never calls a caption of the same image a negative;
    other images that a partial caption also fits remain as soft false negatives, as in any
    in-batch contrastive training. AdamW with warm-up and a cosine schedule
    (``transformers.get_cosine_schedule_with_warmup``); the temperature is CLIP's learnable
    ``logit_scale``.

    Metrics (held out): text->image and image->text R@1 / mAP over the seen-class scenes of
    ``World(n=n_val, seed=world_seed + 1)``, before and after training, and the mean training
    loss of the first and last 20 steps.
    """
    from transformers import get_cosine_schedule_with_warmup

    device = _device()
    rng = np.random.default_rng(config["seed"])
    torch.manual_seed(config["seed"])
    world = _world(config["n_train"], config["world_seed"])
    val = _world(config["n_val"], config["world_seed"] + 1)
    tok = train_caption_tokenizer(world.captions, config["bpe_vocab"], config["max_length"])
    if len(tok) != config["vocab_size"]:
        raise InputError(f"clip_world: the trained tokenizer has {len(tok)} tokens but the "
                         f"config says vocab_size={config['vocab_size']}: retrain with "
                         f"vocab_size={len(tok)}")
    model = build_clip_style(config)
    model.set_tokenizer(tok)
    before = _val_metrics(model, val)
    pixels = torch.cat([model.pixel_values(world.images[s:s + 1000])
                        for s in range(0, world.config.n, 1000)])
    enc = model.tokenize(world.captions)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    per = world.config.captions_per_image
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    # weight decay on matrices only (not on biases, norms, or the temperature logit_scale)
    groups = [{"params": [p for p in params if p.ndim >= 2],
               "weight_decay": config["weight_decay"]},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=config["lr"])
    sched = get_cosine_schedule_with_warmup(opt, config["warmup"], config["steps"])
    losses = []
    for _ in _bar(range(config["steps"]), progress, desc="clip_world steps"):
        idx = rng.choice(world.config.n, config["batch_size"], replace=False)
        caps = torch.from_numpy(idx * per + rng.integers(0, per, len(idx)))
        m = mask[caps]
        width = int(m.sum(1).max())
        out = model.clip(input_ids=ids[caps, :width].to(device),
                         attention_mask=m[:, :width].to(device),
                         pixel_values=pixels[torch.from_numpy(idx)].to(device),
                         return_loss=True)
        opt.zero_grad()
        out.loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():       # CLIP clamps the temperature at 100
            model.clip.logit_scale.clamp_(0, float(np.log(100)))
        losses.append(float(out.loss.detach()))
    model = model.cpu().eval()
    after = _val_metrics(model, val)
    metrics = {"train_loss_first_20_steps": round(float(np.mean(losses[:20])), 4),
               "train_loss_last_20_steps": round(float(np.mean(losses[-20:])), 4),
               "temperature": round(float(1 / model.clip.logit_scale.detach().exp()), 4)}
    metrics.update({f"val_{k}_before": round(v, 4) for k, v in before.items()})
    metrics.update({f"val_{k}": round(v, 4) for k, v in after.items()})
    return Trained(model, metrics=metrics, data={
        "world": {"n": config["n_train"], "seed": config["world_seed"]},
        "val_world": {"n": config["n_val"], "seed": config["world_seed"] + 1,
                      "images": "seen-class scenes"},
        "steps": config["steps"], "batch_size": config["batch_size"],
        "objective": "CLIPModel(return_loss=True): symmetric InfoNCE, one caption per image",
        "tokenizer": f"byte-level BPE trained on the training world's captions, {len(tok)} "
                     "tokens, stored in the tokenizer_json buffer",
        "parameters": int(sum(p.numel() for p in model.clip.parameters()))})


_CLIP_CONFIG: dict[str, Any] = {
    "bpe_vocab": 800, "vocab_size": 1031, "max_length": 64, "tokenizer_bytes": 32768,
    "image_size": 64, "patch_size": 8, "hidden": 96, "layers": 3, "heads": 4,
    "projection_dim": 64, "n_train": 5000, "world_seed": 1500, "n_val": 600, "steps": 500,
    "batch_size": 128, "lr": 1e-3, "weight_decay": 0.1, "warmup": 40, "seed": 0}

CHECKPOINTS: dict[str, CheckpointSpec] = {
    "clip_world": CheckpointSpec(
        name="clip_world", build=build_clip_style, train=train_clip_style,
        config=_CLIP_CONFIG, seconds=480, threads=1,
        description="transformers CLIPModel (ViT 3x96 + text 3x96, 0.8M params, BPE), "
                    "contrastive on world scenes"),
}

__all__ = ["SPECIALS", "train_caption_tokenizer", "tokenizer_to_json", "tokenizer_from_json",
           "small_clip_config", "build_clip", "check_fits", "image_processor", "ClipStyle",
           "load_pretrained_clip", "retrieval_metrics", "build_clip_style", "train_clip_style",
           "CHECKPOINTS"]
