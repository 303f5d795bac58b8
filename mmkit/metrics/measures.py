"""Many metrics from one ranking, by trec_eval name: ``ranking_metrics(scores, relevance)``.

The ranks of the relevant items are computed once (:func:`~mmkit.metrics.ranks.judged_ranks`)
and every requested metric is read from them. Names follow trec_eval:

- ``map``, ``map_cut_K``, ``P_K``, ``recall_K``, ``ndcg``, ``ndcg_cut_K``, ``recip_rank``,
  ``Rprec``, ``success_K`` (the hit rate), ``iprec_at_recall_0.00`` ... ``_1.00``,
  ``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret``;
- mmkit extras: ``F1_K`` and ``map_at_R`` (pytorch-metric-learning's MAP@R, per query).

trec_eval's command-line forms are accepted too: ``P.5,10`` means ``P_5 P_10``, and a bare
``P`` (``recall``, ``map_cut``, ``ndcg_cut``, ``success``, ``iprec_at_recall``) means
trec_eval's default cut-offs.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics.checks import check_level
from mmkit.metrics.crossmodal import hit_rate_at_k
from mmkit.metrics.curves import RECALL_LEVELS, interpolated_precision
from mmkit.metrics.graded import GAINS, ndcg_at_k
from mmkit.metrics.ranking import (average_precision, f1_at_k, map_at_r, precision_at_k,
                                   r_precision, recall_at_k, reciprocal_rank)
from mmkit.metrics.ranks import JudgedRanks, judged_ranks

PerQuery = Callable[[JudgedRanks, float, str], np.ndarray]
AtK = Callable[[JudgedRanks, int, float, str], np.ndarray]

PLAIN: dict[str, PerQuery] = {
    "map": lambda j, level, gain: average_precision(j, None, level=level),
    "ndcg": lambda j, level, gain: ndcg_at_k(j, None, None, gain),
    "recip_rank": lambda j, level, gain: reciprocal_rank(j, None, level=level),
    "Rprec": lambda j, level, gain: r_precision(j, None, level=level),
    "map_at_R": lambda j, level, gain: map_at_r(j, None, level=level),
    "num_q": lambda j, level, gain: np.ones(j.n_queries),
    "num_ret": lambda j, level, gain: j.n_ranked.astype(np.float64),
    "num_rel": lambda j, level, gain: j.n_relevant(level).astype(np.float64),
    "num_rel_ret": lambda j, level, gain:
        np.isfinite(j.relevant_ranks(level)).sum(axis=1).astype(np.float64),
}
"""Metrics without a cut-off: name -> function(judged, level, gain) -> [Q]."""

AT_K: dict[str, AtK] = {
    "P": lambda j, k, level, gain: precision_at_k(j, None, k, level=level),
    "recall": lambda j, k, level, gain: recall_at_k(j, None, k, level=level),
    "F1": lambda j, k, level, gain: f1_at_k(j, None, k, level=level),
    "map_cut": lambda j, k, level, gain: average_precision(j, None, k, level=level),
    "ndcg_cut": lambda j, k, level, gain: ndcg_at_k(j, None, k, gain),
    "success": lambda j, k, level, gain: hit_rate_at_k(j, None, k, level=level),
}
"""Metrics with a cut-off K (name ``base_K``): base -> function(judged, k, level, gain)."""

IPREC = [f"iprec_at_recall_{t:.2f}" for t in RECALL_LEVELS]
"""The 11 interpolated-precision names, in recall order."""

DEFAULT_CUTOFFS = {"P": (5, 10, 15, 20, 30, 100, 200, 500, 1000), "success": (1, 5, 10)}
COUNTS = ("num_q", "num_ret", "num_rel", "num_rel_ret")
"""Metrics that trec_eval sums over queries instead of averaging."""

_AT_K_NAME = re.compile(r"(?P<base>\w+?)_(?P<k>[0-9]+)")
_TREC_FORM = re.compile(r"(?P<base>\w+)\.(?P<ks>[0-9]+(,[0-9]+)*)")


def metric_names(names: Iterable[str]) -> list[str]:
    """Check metric names and expand trec_eval's forms (``P.5,10``, ``P``); order kept."""
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        trec_form = _TREC_FORM.fullmatch(name)
        if trec_form and trec_form["base"] in AT_K:
            expanded = [f"{trec_form['base']}_{int(k)}" for k in trec_form["ks"].split(",")]
        elif name in AT_K:
            cutoffs = DEFAULT_CUTOFFS.get(name, DEFAULT_CUTOFFS["P"])
            expanded = [f"{name}_{k}" for k in cutoffs]
        elif name == "iprec_at_recall":
            expanded = IPREC
        else:
            expanded = [name]
        for metric in expanded:
            at_k = _AT_K_NAME.fullmatch(metric)
            known = metric in PLAIN or metric in IPREC or (
                at_k is not None and at_k["base"] in AT_K and int(at_k["k"]) > 0)
            if not known:
                raise InputError(f"unknown metric {metric!r}; known: {', '.join(PLAIN)}, "
                                 f"{', '.join(b + '_K' for b in AT_K)}, iprec_at_recall_0.00..1.00")
            if metric not in out:
                out.append(metric)
    return out


def ranking_metrics(scores: Any, relevance: Any = None,
                    metrics: Iterable[str] = ("map", "ndcg_cut_10", "P_10"), *,
                    level: float = 1, gain: str = "linear") -> dict[str, np.ndarray]:
    """Per-query values {name: float64 [Q]} of several metrics, ranking only once.

    ``scores``/``relevance`` as in :mod:`mmkit.metrics.ranking` (score matrix [Q, N],
    RankedLists or JudgedRanks). ``level``: relevant iff relevance >= level (not used by
    NDCG, which uses every grade > 0); ``gain``: "linear" or "exp" for NDCG.
    Means over queries give mAP etc. (trec_eval sums the ``num_*`` counts instead).
    """
    names, level = metric_names(metrics), check_level(level)
    if gain not in GAINS:
        raise InputError(f"gain must be one of {GAINS}, got {gain!r}")
    judged = judged_ranks(scores, relevance)
    iprec = interpolated_precision(judged, None, level=level) \
        if any(name in IPREC for name in names) else None
    values = {}
    for name in names:
        if name in PLAIN:
            values[name] = PLAIN[name](judged, level, gain)
        elif name in IPREC:
            values[name] = iprec[:, IPREC.index(name)]
        else:
            at_k = _AT_K_NAME.fullmatch(name)
            values[name] = AT_K[at_k["base"]](judged, int(at_k["k"]), level, gain)
    return values
