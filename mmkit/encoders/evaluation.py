"""Trained encoders on the evaluation split: their inputs embedded once, scored by
:mod:`mmkit.scoring` (the one scoring module; nothing is scored here).

- :class:`ProtocolData`: the evaluation split's images, captions and sounds
  (:func:`mmkit.scoring.eval_world`, its :data:`~mmkit.scoring.EVAL_SPLIT`), built once and
  reused by every evaluation while a joint model trains;
- :func:`protocol_results`: the results table of a joint model
  (:class:`~mmkit.encoders.joint.JointModel`) over :data:`JOINT_DIRECTIONS`;
- :func:`protocol_speech_results`: speech->image and text->image of a speech tower aligned
  to a joint model (:mod:`mmkit.encoders.speech`);
- :func:`retrieval_metrics`: the image/text table of a CLIP-style model
  (:class:`~mmkit.encoders.clip.modeling.ClipStyle`) over any scenes of a world;
- :data:`PROTOCOL` and :func:`protocol_unseen_classes`: the old names of
  :data:`mmkit.scoring.EVAL_WORLD` and :func:`mmkit.scoring.unseen_classes`.

The model modules re-export what they used to hold (``mmkit.encoders.joint.protocol_results``,
``mmkit.encoders.speech.protocol_speech_results``, ``mmkit.encoders.hf_clip.retrieval_metrics``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmkit.errors import InputError
from mmkit.features.audio_cnn import world_speech_log_mels
from mmkit.scoring import (EVAL_SPLIT, EVAL_WORLD, eval_world, score_embeddings, unseen_classes)

if TYPE_CHECKING:
    from mmkit.encoders.clip.modeling import ClipStyle
    from mmkit.encoders.joint import JointModel
    from mmkit.encoders.speech import SpeechTower

__all__ = ["PROTOCOL", "JOINT_DIRECTIONS", "ProtocolData", "protocol_results",
           "protocol_unseen_classes", "protocol_speech_results", "retrieval_metrics"]

#: the evaluation world of the demo, the README and the benchmarks (old name of
#: :data:`mmkit.scoring.EVAL_WORLD`)
PROTOCOL: dict[str, int] = EVAL_WORLD
#: the directions the joint model is trained for and scored on (speech joins with
#: :mod:`mmkit.encoders.speech`)
JOINT_DIRECTIONS: tuple[str, ...] = ("text->image", "image->text", "image->image", "audio->image")


class ProtocolData:
    """The evaluation split's inputs (:func:`mmkit.scoring.eval_world`, its
    :data:`~mmkit.scoring.EVAL_SPLIT`), built once and reused by every evaluation during
    training: images uint8 [441, 64, 64, 3], 2,205 captions, sounds float32 [441, T]."""

    def __init__(self, progress: bool = False) -> None:
        self.world = eval_world(progress=progress)
        self.test = self.world.indices(EVAL_SPLIT)
        self.images = self.world.images[self.test]
        self.captions = [self.world.captions[j] for j in self.world.caption_indices(self.test)]
        self.audio = self.world.audio[self.test]


def protocol_results(model: JointModel, data: ProtocolData | None = None,
                     directions: Sequence[str] = JOINT_DIRECTIONS) -> dict[str, dict[str, float]]:
    """``{direction: {metric: value}}`` of ``model`` on the evaluation split (every metric of
    :data:`mmkit.scoring.METRICS`, rounded to 4 decimals; scored by
    :func:`mmkit.scoring.score_embeddings`)."""
    data = data or ProtocolData()
    vectors = {"image": model.embed_images(data.images),
               "text": model.embed_texts(data.captions),
               "audio": model.embed_audio(data.audio, data.world.config.sample_rate)}
    results = score_embeddings(data.world, data.test, vectors, directions)
    return {name: {k: round(float(v), 4) for k, v in res.items()} for name, res in results.items()}


def protocol_unseen_classes() -> np.ndarray:
    """The classes the evaluation world holds out (its ``unseen`` split): int [8]
    (:func:`mmkit.scoring.unseen_classes`). Training never sees them, so the unseen split
    measures zero-shot retrieval."""
    return unseen_classes()


def protocol_speech_results(joint: JointModel, tower: SpeechTower) -> dict[str, float]:
    """speech->image and text->image R@1 / R@10 on the evaluation split
    (:class:`ProtocolData`, scored by :func:`mmkit.scoring.score_embeddings`), rounded to 4
    decimals: ``{"protocol_speech_to_image_R@1": ..., ...}``."""
    data = ProtocolData()
    caps = data.world.caption_indices(data.test)
    vectors = {"image": joint.embed_images(data.images),
               "speech": tower.embed_log_mels(world_speech_log_mels(data.world, caps)),
               "text": joint.embed_texts(data.captions)}
    results = score_embeddings(data.world, data.test, vectors, ("speech->image", "text->image"))
    out = {}
    for name, res in results.items():
        key = name.replace("->", "_to_")
        out[f"protocol_{key}_R@1"] = round(float(res["R@1"]), 4)
        out[f"protocol_{key}_R@10"] = round(float(res["R@10"]), 4)
    return out


def retrieval_metrics(model: ClipStyle, world: Any, images: np.ndarray,
                      directions: Sequence[str] = ("text->image", "image->text"),
                      batch_size: int = 256) -> dict[str, dict[str, float]]:
    """The results table (R@1/5/10, mAP, NDCG@10) of a CLIP-style ``model`` over ``images``
    (indices of ``world``), per image/text direction: the images and their captions embedded
    once, scored by :func:`mmkit.scoring.score_embeddings`."""
    images = np.asarray(images)
    modalities = {m for name in directions for m in name.split("->")}
    other = sorted(modalities - {"image", "text"})
    if other:
        raise InputError(f"retrieval_metrics: CLIP embeds images and text, not {other[0]} "
                         f"(directions {', '.join(directions)})")
    vectors = {}
    if "image" in modalities:
        vectors["image"] = model.embed_images(world.images[world.unit_ids("image", images)],
                                              batch_size=batch_size)
    if "text" in modalities:
        vectors["text"] = model.embed_texts(
            [world.captions[j] for j in world.unit_ids("text", images)], 2 * batch_size)
    return score_embeddings(world, images, vectors, directions)
