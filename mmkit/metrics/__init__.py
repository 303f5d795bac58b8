"""Retrieval metrics, vectorised over queries (numpy core; torch tensors accepted as input).

Inputs: a score matrix [Q, N] (higher is better) or ``RankedLists(ids)`` ([Q, L] item ids,
-1 padded), plus relevance [Q, N] (dense or scipy.sparse; binary or graded, >= 0).
Per-query functions return float64 arrays [Q]. Conventions follow trec_eval (AP, recall and
R-precision divide by all relevant items, ...) except for ties: a score matrix has no document
names, so tied scores are broken by column index ascending (stable sort), where trec_eval
sorts tied documents by name, descending (``mmkit eval`` on run files does as trec_eval);
AP, recall and R-precision
divide by all relevant items, retrieved or not; P@k divides by k; the ideal DCG uses every
judged relevant item; a query with no relevant item scores 0.

``ranking_metrics`` ranks once and computes many metrics by trec_eval name; ``mmkit eval``
(:func:`mmkit.metrics.trec.eval_main`) evaluates trec_eval run and qrels files.
"""
from __future__ import annotations

from mmkit.metrics.correlation import kendall_tau_b, spearman_rho
from mmkit.metrics.crossmodal import (first_positive_rank, hit_rate_at_k, image_text_retrieval,
                                      mean_rank, median_rank)
from mmkit.metrics.curves import RECALL_LEVELS, interpolated_precision, precision_recall_curve
from mmkit.metrics.graded import dcg_at_k, ndcg_at_k
from mmkit.metrics.measures import metric_names, ranking_metrics
from mmkit.metrics.ranking import (average_precision, f1_at_k, map_at_r, mean_average_precision,
                                   mean_reciprocal_rank, precision_at_k, r_precision,
                                   recall_at_k, reciprocal_rank)
from mmkit.metrics.ranks import JudgedRanks, RankedLists, judged_ranks
from mmkit.metrics.significance import (ConfidenceInterval, PairedTest, bootstrap_ci,
                                        bootstrap_distribution, paired_bootstrap_test,
                                        paired_permutation_test, paired_t_test,
                                        sign_flip_distribution)

__all__ = [
    "precision_at_k", "recall_at_k", "f1_at_k", "average_precision", "mean_average_precision",
    "r_precision", "map_at_r", "reciprocal_rank", "mean_reciprocal_rank",
    "dcg_at_k", "ndcg_at_k",
    "precision_recall_curve", "interpolated_precision", "RECALL_LEVELS",
    "hit_rate_at_k", "first_positive_rank", "median_rank", "mean_rank", "image_text_retrieval",
    "spearman_rho", "kendall_tau_b",
    "ranking_metrics", "metric_names",
    "RankedLists", "JudgedRanks", "judged_ranks",
    "bootstrap_ci", "bootstrap_distribution", "paired_permutation_test", "sign_flip_distribution",
    "paired_bootstrap_test", "paired_t_test", "ConfidenceInterval", "PairedTest",
]
