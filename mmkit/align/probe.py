"""How far apart are two modalities in a shared space? The modality gap, measured two ways,
both defined once in :mod:`mmkit.scoring`:

- :func:`centroid_gap` (= :func:`mmkit.scoring.modality_gap`): the distance between the
  centroids of the modalities' L2-normalised embeddings (Liang et al. 2022, "Mind the gap":
  contrastive training leaves image and text embeddings in two separate cones of the sphere,
  whatever their retrieval quality);
- :func:`modality_probe` (= :func:`mmkit.scoring.modality_probe`): the accuracy of a linear
  classifier (scikit-learn's ``LogisticRegression``) at telling the modalities apart, trained
  on one half of the embeddings and scored on the other half. 0.5 = indistinguishable (chance
  with balanced classes), 1.0 = linearly separable.
"""
from __future__ import annotations

from mmkit.scoring import modality_gap, modality_probe  # re-export

#: the name notebook 06 uses for :func:`mmkit.scoring.modality_gap`
centroid_gap = modality_gap

__all__ = ["centroid_gap", "modality_gap", "modality_probe"]
