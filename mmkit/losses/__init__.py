"""Metric-learning losses in pytorch-metric-learning's interface.

``loss(embeddings float [N, D], labels int [N], indices_tuple=None) -> scalar``; the
index tuple (from a :mod:`mmkit.miners` miner) picks the pairs ``(a1, p, a2, n)`` or the
triplets ``(a, p, n)`` the loss is computed on (None: all of them). Distances are pluggable
(:mod:`mmkit.losses.distances`).
"""
from mmkit.losses.base import MetricLoss, all_pairs, all_triplets
from mmkit.losses.contrastive import ContrastiveLoss
from mmkit.losses.distances import BaseDistance, CosineSimilarity, LpDistance
from mmkit.losses.ntxent import NTXentLoss
from mmkit.losses.ranking import MarginRankingLoss
from mmkit.losses.triplet import TripletMarginLoss

__all__ = ["MetricLoss", "ContrastiveLoss", "TripletMarginLoss", "MarginRankingLoss",
           "NTXentLoss", "BaseDistance", "LpDistance", "CosineSimilarity", "all_pairs",
           "all_triplets"]
