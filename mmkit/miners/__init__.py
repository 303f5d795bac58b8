"""Miners choose the triplets a loss is computed on (pytorch-metric-learning's interface).

``miner(embeddings float [N, D], labels int [N]) -> (a, p, n)``, int64 [K] each; pass the
result to a loss as ``loss(embeddings, labels, indices_tuple)``. float16 and bfloat16
embeddings are mined in float32 (distances, margins and sampling weights).

Deliberate differences from PML's :class:`DistanceWeightedMiner`: every positive of an
anchor is used once (PML draws random positives), and ``nonzero_loss_cutoff <= cutoff`` is
refused (PML accepts it and mines nothing).
"""
from mmkit.miners.base import BaseMiner
from mmkit.miners.batch_all import BatchAllMiner
from mmkit.miners.batch_hard import BatchHardMiner
from mmkit.miners.distance_weighted import DistanceWeightedMiner, negative_weights
from mmkit.miners.triplet_margin import TripletMarginMiner

__all__ = ["BaseMiner", "BatchAllMiner", "BatchHardMiner", "TripletMarginMiner",
           "DistanceWeightedMiner", "negative_weights"]
