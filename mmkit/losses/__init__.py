"""Metric-learning losses in pytorch-metric-learning's interface.

``loss(embeddings float [N, D], labels int [N], indices_tuple=None) -> scalar``; the
index tuple (from a :mod:`mmkit.miners` miner) picks the pairs ``(a1, p, a2, n)`` or the
triplets ``(a, p, n)`` the loss is computed on (None: all of them). Distances are pluggable
(:mod:`mmkit.losses.distances`).

The joint-embedding (cross-modal) losses take two aligned batches instead:
``loss(image_emb float [B, D], text_emb float [B, D], image_ids int64 [B] | None) -> scalar``
(:class:`VSEHingeLoss`: VSE / VSE++ hinge; :class:`SymmetricInfoNCE`: CLIP's loss with a
learnable temperature); same-``image_ids`` rows are never negatives of each other.

Every loss accepts float16 and bfloat16 embeddings: distances, exponentials and reductions
are computed in float32 and the loss is returned in the input dtype (PML returns the input
dtype too). ``labels`` may be None when an ``indices_tuple`` is given (as in PML); with
neither, a one-line :class:`~mmkit.errors.InputError`.

Deliberate differences from PML: :class:`ContrastiveLoss` and :class:`NTXentLoss` count an
index tuple whose vectors hold at most one entry each (one positive and one negative pair,
or a single triplet), where PML returns 0.
"""
from mmkit.losses.base import MetricLoss, all_pairs, all_triplets
from mmkit.losses.contrastive import ContrastiveLoss
from mmkit.losses.distances import BaseDistance, CosineSimilarity, LpDistance
from mmkit.losses.ntxent import NTXentLoss
from mmkit.losses.ranking import MarginRankingLoss
from mmkit.losses.triplet import TripletMarginLoss
from mmkit.losses.vse import VSEHingeLoss, check_joint_batch, same_scene_mask
from mmkit.losses.infonce import SymmetricInfoNCE

__all__ = ["MetricLoss", "ContrastiveLoss", "TripletMarginLoss", "MarginRankingLoss",
           "NTXentLoss", "BaseDistance", "LpDistance", "CosineSimilarity", "all_pairs",
           "all_triplets", "VSEHingeLoss", "SymmetricInfoNCE", "check_joint_batch",
           "same_scene_mask"]
