"""The kit's learned joint embedding as a retrieval method: ``mmkit demo --method joint``.

One space for images, captions, sounds and spoken captions
(:class:`~mmkit.encoders.joint.JointModel` plus the speech tower of
:mod:`mmkit.encoders.speech`), loaded from the committed checkpoints ``joint_world`` and
``joint_speech`` (:func:`mmkit.checkpoints.load`: a missing, corrupt or mismatched file is one
line and a retraining, never a crash). Both were trained on fresh scenes of other seeds, so
:meth:`JointMethod.fit` trains nothing. ``retrain=True`` (``mmkit demo --retrain``) trains
both afresh with progress bars and saves them in the user's ``data/checkpoints/``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mmkit import checkpoints
from mmkit.data.collection import Collection
from mmkit.data.images import check_images
from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.features.audio_cnn import world_speech_log_mels
from mmkit.features.explain import similarity_grad_cam
from mmkit.methods.base import RetrievalMethod

#: the checkpoints the method loads
CHECKPOINT, SPEECH_CHECKPOINT = "joint_world", "joint_speech"


class _ImageTower(nn.Module):
    """The joint model's image side as one module (images -> embeddings), for Grad-CAM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)   # Grad-CAM restores this mode onto the wrapped model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


class JointMethod(RetrievalMethod):
    """Retrieval in every direction through one learned space.

    Args:
        checkpoint, speech_checkpoint: checkpoint names (``mmkit train --list``).
        retrain: train both models from scratch now instead of loading them.
        progress: progress bars while training / synthesising speech.
    """

    name = "joint"
    directions = ("text->image", "image->text", "image->image", "audio->image", "speech->image")
    pretrained = True
    joint_space = True
    input_size = 64

    def __init__(self, checkpoint: str = CHECKPOINT, speech_checkpoint: str = SPEECH_CHECKPOINT,
                 retrain: bool = False, progress: bool = True) -> None:
        self.checkpoint, self.speech_checkpoint = checkpoint, speech_checkpoint
        self.retrain, self.progress = bool(retrain), bool(progress)
        self._model = None
        self._speech = None
        self.manifests: dict[str, dict] = {}

    # ------------------------------------------------------------ loading
    def _get(self, name: str):
        model, manifest = checkpoints.load(name, retrain=self.retrain, progress=self.progress)
        self.manifests[name] = manifest
        return model.eval()

    @property
    def model(self):
        """The image / text / sound towers (:class:`~mmkit.encoders.joint.JointModel`)."""
        if self._model is None:
            self._model = self._get(self.checkpoint)
        return self._model

    @property
    def speech_model(self):
        """The speech tower (:class:`~mmkit.encoders.speech.SpeechTower`)."""
        if self._speech is None:
            joint_sha = self.manifests.get(self.checkpoint, {}).get("sha256") \
                if self._model is not None else None
            if joint_sha is None:
                self.model  # noqa: B018 - the speech tower is aligned to this joint model
                joint_sha = self.manifests[self.checkpoint]["sha256"]
            speech = self._get(self.speech_checkpoint)
            aligned_to = self.manifests[self.speech_checkpoint].get("training_data", {}).get(
                "joint_sha256")
            if aligned_to != joint_sha and not self.retrain:
                import sys

                print(f"mmkit: checkpoint {self.speech_checkpoint!r} was aligned to another "
                      f"{self.checkpoint!r} (sha256 {str(aligned_to)[:12]}, loaded "
                      f"{joint_sha[:12]}); retraining it", file=sys.stderr)
                speech, manifest = checkpoints.load(self.speech_checkpoint, retrain=True,
                                                    progress=self.progress)
                self.manifests[self.speech_checkpoint] = manifest
                speech = speech.eval()
            self._speech = speech
        return self._speech

    @property
    def fingerprint(self) -> str:
        """What identifies this method's embeddings in caches and index folders:
        ``"joint|joint_world:<sha256>|joint_speech:<sha256>"``, the sha256 of the weights
        loaded -- or, before they are loaded, of those :func:`mmkit.checkpoints.load` would
        load now (:func:`mmkit.checkpoints.locate`; a cache hit then loads nothing). When the
        joint checkpoint would be retrained (``retrain``, or nothing usable on disk) it is
        loaded (trained) first; a speech tower that is not loaded yet and has no usable
        checkpoint reads ``"untrained"``."""
        parts = [self.name]
        for name in (self.checkpoint, self.speech_checkpoint):
            manifest = self.manifests.get(name)
            if manifest is None and not self.retrain:
                manifest = checkpoints.locate(name)
            if manifest is None and name == self.checkpoint:
                self.model  # noqa: B018 - what it loads decides the fingerprint
                manifest = self.manifests[name]
            parts.append(f"{name}:{manifest['sha256'] if manifest else 'untrained'}")
        return "|".join(parts)

    def fit(self, collection: Collection, images: np.ndarray) -> "JointMethod":
        """Loads (or, with ``retrain``, trains) the models; learns nothing from ``images``."""
        self.model  # noqa: B018 - load now, so that the demo's stages time honestly
        return self

    # ------------------------------------------------------------ embedding
    def embed_images(self, images: np.ndarray, *, partner: str = "text",
                     batch_size: int | None = None, progress: bool | None = None
                     ) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d] (one space: ``partner`` is ignored); images of
        another size are resized to 64 px. ``batch_size``: default 256; ``progress``:
        default no bar (:meth:`~mmkit.encoders.joint.JointModel.embed_images`)."""
        kwargs = {} if batch_size is None else {"batch_size": batch_size}
        return self.model.embed_images(check_images(images, name="joint images"),
                                       progress=bool(progress), **kwargs)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.embed_texts(list(texts))

    def similarity_map(self, images: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Which pixels make each image look like ``query`` (an embedding [d] in the joint
        space, e.g. a caption's): similarity Grad-CAM (:func:`~mmkit.features.explain.
        similarity_grad_cam`) on the image tower's last conv stage. uint8 [N, H, W, 3] ->
        float32 [N, S, S] in [0, 1] (S: the tower's input size, 64)."""
        model = self.model
        x = model.image_tensor(check_images(images, name="similarity_map images"))
        q = torch.as_tensor(np.asarray(query, np.float32).reshape(-1), device=x.device)
        layer = getattr(model.image, "cam_layer", None) or getattr(
            getattr(model.image, "backbone", None), "cam_layer", None)
        return similarity_grad_cam(_ImageTower(model), x, q, layer=layer)

    def query_note(self, text: str) -> str | None:
        """One line naming the words of ``text`` outside the world's vocabulary (they become
        the unknown token, so the query means less than it says); None when all are known."""
        tok = self.model.tokenizer
        unknown = sorted({w for w in tok.tokens(text) if tok.id_of(w) == tok.unk_id})
        if not unknown:
            return None
        return (f"the joint model does not know the word{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(w) for w in unknown)} (it learned the {tok.vocab_size - 2} "
                "words of the synthetic world; for photos use --method pretrained or clip)")

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        return self.model.embed_audio(clips, sr)

    def embed_speech(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        """Spoken captions (float waveforms [T_m] at ``sr``) -> float32 [M, d]."""
        if len(clips) == 0:
            raise InputError("embed_speech: no clips given")
        return self.speech_model.embed_audio(list(clips), sr)

    def embed_world_speech(self, world: Collection, captions: np.ndarray) -> np.ndarray:
        """The world's spoken captions ``captions`` -> float32 [M, d], synthesised in
        parallel and cached (:func:`mmkit.features.audio_cnn.world_speech_log_mels`)."""
        if not isinstance(world, World):   # a dataset read from disk: its own recordings
            return super().embed_world_speech(world, captions)
        mels = world_speech_log_mels(world, captions, mel=self.speech_model.mel_config,
                                     progress=self.progress)
        return self.speech_model.embed_log_mels(mels)
