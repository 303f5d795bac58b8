"""A CLIP-style model built with transformers' own ``CLIPModel`` class, small, trained on the
world; and the same wrapper around a pretrained CLIP loaded with ``from_pretrained``.

One file per role, as transformers' ``models/clip/`` has them, training apart from the model
(as open_clip keeps it): :mod:`~mmkit.encoders.clip.tokenization` (the tokenizer),
:mod:`~mmkit.encoders.clip.configuration` (``CLIPConfig`` and :class:`ClipStyleConfig`),
:mod:`~mmkit.encoders.clip.modeling` (:class:`ClipStyle`, building and loading),
:mod:`~mmkit.encoders.clip.training` (:func:`train_clip_style`, the ``clip_world`` checkpoint);
scoring is :func:`mmkit.encoders.evaluation.retrieval_metrics`. Every name is importable from
here and from the old path ``mmkit.encoders.hf_clip``.

The point for notebook 04: the class that loads ``openai/clip-vit-base-patch32`` is the class
trained here. Only its size differs (a ``CLIPConfig`` of a few layers instead of twelve) and
its tokenizer, which is trained offline on world captions with the ``tokenizers`` library in
exactly CLIP's format (lower-cased byte-level BPE with the ``</w>`` end-of-word suffix).

- :func:`train_caption_tokenizer`: captions -> ``CLIPTokenizer`` (bos ``<|startoftext|>`` = 0,
  eos ``<|endoftext|>`` = 1, pad ``<|pad|>`` = 2); deterministic; every byte and its word-final
  form is in the vocabulary, so no text ever falls back to the unknown token.
- :func:`small_clip_config` / :func:`build_clip`: a ``CLIPConfig`` whose vocabulary size and
  bos/eos/pad ids are the tokenizer's, and the random ``CLIPModel``; :class:`ClipStyleConfig`
  (validated, the ``clip_world`` checkpoint's config) and :func:`build_clip_style`.
- :class:`ClipStyle`: ``embed_images(uint8 [N, H, W, 3]) -> float32 [N, d]`` and
  ``embed_texts(list[str]) -> float32 [N, d]`` (L2-normalised, batched, no gradient) through
  ``get_image_features`` / ``get_text_features``.
- :func:`train_clip_style` (checkpoint ``clip_world`` in :data:`CHECKPOINTS`): contrastive
  training with ``CLIPModel(return_loss=True)`` on fresh scenes of seed 1500.
- :func:`load_clip` / :func:`load_pretrained_clip`: a pretrained CLIP with
  ``from_pretrained`` (a local folder, or the hub when online), in the same :class:`ClipStyle`
  (the one CLIP wrapper: the retrieval method ``ClipMethod`` of ``mmkit demo --method clip``
  is a thin adapter around it).

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
otherwise; a pretrained CLIP whose config keeps the legacy ids pools at the largest id, which
:func:`check_pretrained_fits` checks is its tokenizer's eos); ``get_*_features`` return an
output object (:func:`feature_tensor` reads its ``pooler_output``).
"""
from mmkit.encoders.clip.configuration import (ClipStyleConfig, check_fits, check_pretrained_fits,
                                               clip_style_config, small_clip_config)
from mmkit.encoders.clip.modeling import (DEFAULT_CLIP, SUGGESTED_FOLDER, ClipStyle, build_clip,
                                          build_clip_style, feature_tensor, image_processor,
                                          load_clip, load_pretrained_clip)
from mmkit.encoders.clip.tokenization import (SPECIALS, tokenizer_from_json, tokenizer_to_json,
                                              train_caption_tokenizer)
from mmkit.encoders.clip.training import CHECKPOINTS, CLIP_CONFIG, train_clip_style
from mmkit.encoders.evaluation import retrieval_metrics

__all__ = ["SPECIALS", "DEFAULT_CLIP", "SUGGESTED_FOLDER", "train_caption_tokenizer",
           "tokenizer_to_json", "tokenizer_from_json", "small_clip_config", "build_clip",
           "check_fits", "check_pretrained_fits", "image_processor", "ClipStyle", "load_clip",
           "feature_tensor", "load_pretrained_clip", "retrieval_metrics", "build_clip_style",
           "train_clip_style", "CHECKPOINTS", "ClipStyleConfig", "clip_style_config",
           "CLIP_CONFIG"]
