"""Encoders into shared spaces.

- ``mmkit.encoders.cca``: CCA between two modalities (closed form; scikit-learn's solver as a
  cross-check), the baseline's joint space;
- ``mmkit.encoders.metric``: metric learning with ``mmkit.losses`` and ``mmkit.miners``
  (Siamese / triplet training, PML-style retrieval scores, few-shot accuracy); imported on
  demand, as it needs torch.
"""
from mmkit.encoders.cca import CCA

__all__ = ["CCA"]
