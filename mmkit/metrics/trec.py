"""trec_eval file formats and the ``mmkit eval`` command.

- qrels: one judgement per line, ``qid iter docid rel`` (``iter`` is ignored; ``rel`` is an
  integer, relevant iff rel >= level; rel <= 0 means judged non-relevant).
- run: one retrieved document per line, ``qid Q0 docid rank score tag``.

As trec_eval does: the order within a query comes from the score (descending; ties by
docno descending), not from the rank column; queries of the run without judgements are
skipped (and judged queries missing from the run); relevant documents that were not
retrieved still count; ``num_*`` counts are summed over queries, every other metric is
averaged. Any malformed line is an :class:`~mmkit.errors.InputError` naming file and line.
Both files are UTF-8 text; a byte-order mark at the start of a file is skipped.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Iterable, Iterator

import numpy as np

from mmkit._argparse import OneLineParser, positive_int_arg
from mmkit.errors import InputError, MMKitError
from mmkit.metrics.checks import check_level
from mmkit.metrics.measures import COUNTS, IPREC, metric_names, ranking_metrics
from mmkit.metrics.ranks import JudgedRanks

DEFAULT_METRICS = ("num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank",
                   *IPREC, "P", "ndcg", "ndcg_cut_10")
"""trec_eval's default measures (less gm_map and bpref) plus ``ndcg`` and ``ndcg_cut_10``."""


def _fields(path: str | os.PathLike, n_fields: int, layout: str) -> Iterator[tuple[int, list]]:
    """(line number, fields) for each non-blank line; InputError for unreadable files."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as lines:
            for line_no, raw in enumerate(lines, start=1):
                try:  # a UTF-8 byte-order mark (Windows editors) is no part of the first id
                    fields = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").split()
                except UnicodeDecodeError:
                    raise InputError(f"{name}:{line_no}: not UTF-8 text") from None
                if not fields:
                    continue
                if len(fields) != n_fields:
                    raise InputError(f"{name}:{line_no}: expected {n_fields} fields "
                                     f"'{layout}', got {len(fields)}")
                yield line_no, fields
    except OSError as error:
        raise InputError(f"{name}: cannot read: {error.strerror or error}") from None


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """``{qid: {docid: rel}}`` from a qrels file (``qid iter docid rel``)."""
    qrels: dict[str, dict[str, int]] = {}
    for line_no, (qid, _, docid, rel) in _fields(path, 4, "qid iter docid rel"):
        where = f"{os.fspath(path)}:{line_no}"
        try:
            value = int(rel)
        except ValueError:
            raise InputError(f"{where}: rel {rel!r} is not an integer") from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise InputError(f"{where}: document {docid!r} judged twice for query {qid!r}")
        judged[docid] = value
    return qrels


def read_run(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``{qid: {docid: score}}`` from a run file (``qid Q0 docid rank score tag``)."""
    run: dict[str, dict[str, float]] = {}
    for line_no, (qid, _, docid, rank, score, _) in _fields(path, 6,
                                                           "qid Q0 docid rank score tag"):
        where = f"{os.fspath(path)}:{line_no}"
        try:
            int(rank)  # checked, then unused: as in trec_eval, the order comes from the score
        except ValueError:
            raise InputError(f"{where}: rank {rank!r} is not an integer") from None
        try:
            value = float(score)
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise InputError(f"{where}: score {score!r} is not a number")
        retrieved = run.setdefault(qid, {})
        if docid in retrieved:
            raise InputError(f"{where}: document {docid!r} appears twice for query {qid!r}")
        retrieved[docid] = value
    return run


def trec_judged_ranks(run: dict[str, dict[str, float]],
                      qrels: dict[str, dict[str, int]]) -> tuple[list[str], JudgedRanks]:
    """The evaluated query ids (in both run and qrels, sorted) and their JudgedRanks."""
    qids = sorted(run.keys() & qrels.keys())
    if not qids:
        raise InputError("no query has both results in the run and judgements in the qrels")
    rows, ranks, grades = [], [], []
    for row, qid in enumerate(qids):
        ranked = sorted(run[qid].items(), key=lambda item: (item[1], item[0]), reverse=True)
        rank_of = {docid: rank for rank, (docid, _) in enumerate(ranked, start=1)}
        for docid, rel in qrels[qid].items():
            if rel > 0:
                rows.append(row)
                ranks.append(rank_of.get(docid, math.inf))
                grades.append(rel)
    judged = JudgedRanks.from_flat(np.array(rows, dtype=np.int64), np.array(ranks, dtype=float),
                                   np.array(grades, dtype=float),
                                   np.array([len(run[qid]) for qid in qids]))
    return qids, judged


def evaluate_run(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]],
             metrics: Iterable[str] = DEFAULT_METRICS, *,
             level: float = 1) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """trec_eval on dicts: ``(summary {metric: value}, per_query {qid: {metric: value}})``.

    The summary is the mean over the evaluated queries, or the sum for ``num_*`` counts.
    """
    names, level = metric_names(metrics), check_level(level)
    qids, judged = trec_judged_ranks(run, qrels)
    values = ranking_metrics(judged, None, names, level=level)
    summary = {name: float(v.sum() if name in COUNTS else v.mean()) for name, v in values.items()}
    per_query = {qid: {name: float(v[row]) for name, v in values.items()}
                 for row, qid in enumerate(qids)}
    return summary, per_query


def _format(name: str, value: float) -> str:
    return str(int(value)) if name in COUNTS else f"{value:.4f}"


def format_trec(summary: dict[str, float], per_query: dict[str, dict[str, float]] | None) -> str:
    """trec_eval's text output: ``metric<TAB>qid<TAB>value`` lines, the summary as ``all``.

    The metric name is padded to 22 characters as trec_eval pads it; per-query lines (no
    ``num_q``) come first, query by query.
    """
    lines = [f"{name:<22}\t{qid}\t{_format(name, value)}"
             for qid, values in (per_query or {}).items()
             for name, value in values.items() if name != "num_q"]
    lines += [f"{name:<22}\tall\t{_format(name, value)}" for name, value in summary.items()]
    return "\n".join(lines)


def format_json(summary: dict[str, float], per_query: dict[str, dict[str, float]] | None) -> str:
    """``{"metrics": {name: value}, "per_query": {qid: {name: value}}}`` (counts as ints)."""
    def typed(values: dict[str, float]) -> dict[str, float | int]:
        return {name: int(v) if name in COUNTS else v for name, v in values.items()}

    out: dict = {"metrics": typed(summary)}
    if per_query is not None:
        out["per_query"] = {qid: typed(values) for qid, values in per_query.items()}
    return json.dumps(out, indent=2)


def eval_main(argv: list[str] | None = None) -> int:
    """``mmkit eval --run RUN --qrels QRELS [-m METRIC ...] [-q] [--json]``; returns the exit code.

    0 on success; 2 on bad input, after printing ``mmkit eval: error: <message>`` to stderr.
    """
    parser = OneLineParser(
        prog="mmkit eval",
        description="Evaluate a TREC run against qrels, as trec_eval does.")
    parser.add_argument("--run", required=True, help="run file: qid Q0 docid rank score tag")
    parser.add_argument("--qrels", required=True, help="qrels file: qid iter docid rel")
    parser.add_argument("-m", "--metrics", nargs="+", action="extend", metavar="METRIC",
                        help="trec_eval names, e.g. map P_10 ndcg_cut_10 (or P.5,10); "
                             "default: trec_eval's usual set")
    parser.add_argument("-q", dest="per_query", action="store_true",
                        help="also print the value of each query")
    parser.add_argument("-l", "--level", type=positive_int_arg, default=1,
                        help="relevant iff rel >= LEVEL (default 1, as trec_eval -l)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse printed the usage (error) or the help
        return int(exit_.code or 0)
    try:
        metrics = metric_names(args.metrics or DEFAULT_METRICS)
        qrels, run = read_qrels(args.qrels), read_run(args.run)
        summary, per_query = evaluate_run(run, qrels, metrics, level=args.level)
    except MMKitError as error:
        print(f"mmkit eval: error: {error}", file=sys.stderr)
        return 2
    shown = per_query if args.per_query else None
    print(format_json(summary, shown) if args.json else format_trec(summary, shown))
    return 0
