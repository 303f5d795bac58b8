"""Old path of :mod:`mmkit.encoders.clip` (transformers' ``CLIPModel``, built small with a
tokenizer trained offline, or a pretrained CLIP loaded from a folder): every name it had is
re-exported from its home there (tokenization, configuration, modeling, training) or in
:mod:`mmkit.encoders.evaluation` (:func:`retrieval_metrics`). ``CHECKPOINTS`` is registered
by :mod:`mmkit.encoders.clip.training`.
"""
from mmkit.encoders.clip.configuration import (ClipStyleConfig, _make_config,  # noqa: F401
                                               check_fits, check_pretrained_fits,
                                               clip_style_config, small_clip_config)
from mmkit.encoders.clip.modeling import (DEFAULT_CLIP, SUGGESTED_FOLDER,  # noqa: F401
                                          ClipStyle, _device, _fetch_hint, build_clip,
                                          build_clip_style, feature_tensor, image_processor,
                                          load_clip, load_pretrained_clip)
from mmkit.encoders.clip.tokenization import (BOS, EOS, PAD, SPECIALS, SUFFIX,  # noqa: F401
                                              _clip_tokenizer, tokenizer_from_json,
                                              tokenizer_to_json, train_caption_tokenizer)
from mmkit.encoders.clip.training import CHECKPOINTS, CLIP_CONFIG, train_clip_style
from mmkit.encoders.evaluation import retrieval_metrics

#: old name of :data:`mmkit.encoders.clip.training.CLIP_CONFIG`
_CLIP_CONFIG = CLIP_CONFIG

__all__ = ["SPECIALS", "DEFAULT_CLIP", "SUGGESTED_FOLDER", "train_caption_tokenizer",
           "tokenizer_to_json", "tokenizer_from_json", "small_clip_config", "build_clip",
           "check_fits", "check_pretrained_fits", "image_processor", "ClipStyle", "load_clip",
           "feature_tensor", "load_pretrained_clip", "retrieval_metrics", "build_clip_style",
           "train_clip_style", "CHECKPOINTS", "ClipStyleConfig", "clip_style_config"]
