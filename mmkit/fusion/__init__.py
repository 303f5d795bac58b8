"""Multimodal fusion: one query or one index from several modalities.

- :mod:`mmkit.fusion.scores`: late fusion of score matrices (normalisation, weighted sum,
  CombSUM / CombMNZ, reciprocal rank fusion; missing modalities renormalise the weights);
- :mod:`mmkit.fusion.early`: early fusion (concatenation or compact bilinear pooling, then a
  learned projection) - torch;
- :mod:`mmkit.fusion.gated`: attention / gated fusion, per-query modality weights - torch;
- :mod:`mmkit.fusion.graph`: random-walk re-ranking on a multi-layer k-NN graph;
- :mod:`mmkit.fusion.composed`: composed queries (image + "the same, but blue") and their
  exact targets;
- :mod:`mmkit.fusion.protocol`: the query sets of notebook 07 from a retrieval method.

Importing :mod:`mmkit.fusion` loads only the numpy parts.
"""
from __future__ import annotations

from mmkit.fusion.composed import Modification, composed_ground_truth, make_composed_queries
from mmkit.fusion.graph import knn_graph, rerank, stationary, transition_matrix, tune_graph
from mmkit.fusion.scores import (RRF_K, comb_mnz, comb_sum, fusion_weights, normalise,
                                 reciprocal_rank_fusion, tune_rrf_k, tune_weights,
                                 weighted_sum)

__all__ = ["Modification", "composed_ground_truth", "make_composed_queries", "knn_graph",
           "rerank", "stationary", "transition_matrix", "tune_graph", "RRF_K", "comb_mnz",
           "comb_sum", "fusion_weights", "normalise", "reciprocal_rank_fusion", "tune_rrf_k",
           "tune_weights", "weighted_sum"]
