"""Encoders into shared spaces. Each model family keeps its model and its training apart (a
training module beside each model module), with a typed config (a frozen, validated
dataclass whose ``to_dict()`` is the checkpoints' config dict).

- ``mmkit.encoders.base``: the ``Encoder`` protocol (one ``embed_images`` signature);
- ``mmkit.encoders.cca``: CCA between two modalities (closed form; scikit-learn's solver as a
  cross-check), the baseline's joint space;
- ``mmkit.encoders.joint``: the image / text / sound towers into one space (``JointModel``,
  ``JointConfig``); ``mmkit.encoders.joint_training``: its trainer (VSE, VSE++, InfoNCE on
  fresh scenes) and the ``joint_*`` checkpoints;
- ``mmkit.encoders.speech``: spoken captions into that space (``SpeechTower``,
  ``SpeechConfig``); ``mmkit.encoders.speech_training``: its trainer and ``joint_speech``;
- ``mmkit.encoders.clip``: transformers' ``CLIPModel``, one file per role: ``tokenization``
  (a CLIP tokenizer trained offline), ``configuration`` (``CLIPConfig`` built small,
  ``ClipStyleConfig``), ``modeling`` (``ClipStyle``, the one CLIP wrapper; pretrained
  loading), ``training`` (``clip_world``); old path ``mmkit.encoders.hf_clip``;
- ``mmkit.encoders.evaluation``: trained encoders on the evaluation split (inputs embedded
  once, scored by ``mmkit.scoring``);
- ``mmkit.encoders.config`` (re-exports ``mmkit.configs``): what the configs share
  (``from_dict`` / ``to_dict``, the training world ``{"n", "seed"}``, one-line validation);
- ``mmkit.encoders.bilinear``: compact bilinear pooling;
- ``mmkit.encoders.metric_learning`` (old path ``mmkit.encoders.metric``): metric learning
  with ``mmkit.losses`` and ``mmkit.miners`` (Siamese / triplet training, PML-style retrieval
  scores, few-shot accuracy; ``MetricWorldConfig``, ``MetricDigitsConfig``).

All but ``cca`` are imported on demand, as they need torch.
"""
from mmkit.encoders.cca import CCA

__all__ = ["CCA"]
