"""trec_eval formats and ``mmkit eval`` end to end, against pytrec_eval (to 1e-9)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmkit.errors import InputError
from mmkit.metrics.trec import eval_main, evaluate_run, read_qrels, read_run

pytrec_eval = pytest.importorskip("pytrec_eval")

TOL = 1e-9
MEASURES = ["map", "map_cut_5", "P_5", "P_10", "recall_10", "ndcg", "ndcg_cut_10",
            "recip_rank", "Rprec", "success_1", "iprec_at_recall_0.70", "num_q", "num_ret",
            "num_rel", "num_rel_ret"]
COUNTS = {"num_q", "num_ret", "num_rel", "num_rel_ret"}


def write_collection(folder, seed: int = 0):
    """Run and qrels files exercising what trec_eval handles specially.

    Tied scores (docno order decides), docnos that sort differently as text and number,
    graded, zero and negative judgements, unjudged retrieved documents, relevant documents
    never retrieved, a judged query without relevant documents, a run-only query, a
    qrels-only query, and a rank column that disagrees with the scores.
    """
    rng = np.random.default_rng(seed)
    run_lines, qrels_lines = [], []
    for q in range(25):
        docs = rng.choice(60, size=rng.integers(1, 40), replace=False)
        scores = np.round(rng.random(len(docs)), 1)  # many ties
        for rank, (doc, score) in enumerate(zip(docs, scores), start=1):
            run_lines.append(f"q{q} Q0 doc{doc} {len(docs) - rank} {score} tag")
        for doc in rng.choice(60, size=15, replace=False):
            rel = 0 if q == 3 else int(rng.choice([-1, 0, 0, 1, 2, 3]))
            qrels_lines.append(f"q{q} 0 doc{doc} {rel}")
    run_lines.append("run_only Q0 doc1 1 1.0 tag")
    qrels_lines.append("qrels_only 0 doc1 1")
    rng.shuffle(run_lines)
    run, qrels = folder / "run.txt", folder / "qrels.txt"
    run.write_text("\n".join(run_lines) + "\n")
    qrels.write_text("\n".join(qrels_lines) + "\n\n")  # a trailing blank line is fine
    return run, qrels


def pytrec_reference(run_path, qrels_path, level=1):
    run, qrels = read_run(run_path), read_qrels(qrels_path)
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, {"map", "map_cut", "P", "recall", "ndcg", "ndcg_cut", "recip_rank", "Rprec",
                "success", "iprec_at_recall", "num_q", "num_ret", "num_rel", "num_rel_ret"},
        relevance_level=level)
    per_query = evaluator.evaluate(run)
    summary = {name: pytrec_eval.compute_aggregated_measure(
        name, [values[name] for values in per_query.values()]) for name in MEASURES}
    return summary, per_query


def run_eval(capsys, *argv):
    code = eval_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("seed", [0, 1])
def test_json_matches_pytrec_eval(tmp_path, capsys, seed):
    run, qrels = write_collection(tmp_path, seed)
    code, out, err = run_eval(capsys, "--run", run, "--qrels", qrels, "-q", "--json",
                              "-m", *MEASURES)
    assert code == 0 and err == ""
    got = json.loads(out)
    summary, per_query = pytrec_reference(run, qrels)
    assert list(got["metrics"]) == MEASURES
    for name in MEASURES:
        assert got["metrics"][name] == pytest.approx(summary[name], abs=TOL), name
    assert sorted(got["per_query"]) == sorted(per_query)  # run-only/qrels-only skipped
    for qid, values in per_query.items():
        for name in MEASURES:
            assert got["per_query"][qid][name] == pytest.approx(values[name], abs=TOL)


def test_level_option_matches_pytrec_eval(tmp_path, capsys):
    run, qrels = write_collection(tmp_path, 2)
    code, out, _ = run_eval(capsys, "--run", run, "--qrels", qrels, "--json", "-l", "2",
                            "--metrics", "map", "P_5", "num_rel", "ndcg_cut_10")
    summary, _ = pytrec_reference(run, qrels, level=2)
    assert code == 0
    for name, value in json.loads(out)["metrics"].items():
        assert value == pytest.approx(summary[name], abs=TOL), name


def test_text_output_like_trec_eval(tmp_path, capsys):
    run, qrels = write_collection(tmp_path, 3)
    code, out, _ = run_eval(capsys, "--run", run, "--qrels", qrels, "-q",
                            "-m", "num_q", "num_ret", "map", "P.5,10")
    summary, per_query = pytrec_reference(run, qrels)
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert all(len(fields) == 3 for fields in lines)
    expected = [[name, qid, per_query[qid][name]] for qid in sorted(per_query)
                for name in ("num_ret", "map", "P_5", "P_10")]
    expected += [[name, "all", summary[name]] for name in ("num_q", "num_ret", "map", "P_5",
                                                            "P_10")]
    assert [[name.rstrip(), qid, value] for name, qid, value in lines] == [
        [name, qid, str(int(v)) if name in COUNTS else f"{v:.4f}"] for name, qid, v in expected]
    assert all(len(fields[0]) == 22 for fields in lines)  # names padded as trec_eval does


def test_default_metrics_and_evaluate_api(tmp_path, capsys):
    run, qrels = write_collection(tmp_path, 4)
    code, out, _ = run_eval(capsys, "--run", run, "--qrels", qrels)
    names = [line.split("\t")[0].rstrip() for line in out.splitlines()]
    assert code == 0 and names[:5] == ["num_q", "num_ret", "num_rel", "num_rel_ret", "map"]
    assert {"P_5", "P_1000", "recip_rank", "Rprec", "iprec_at_recall_0.00", "ndcg"} <= set(names)
    summary, per_query = evaluate_run(read_run(run), read_qrels(qrels), ["map"])
    reference, _ = pytrec_reference(run, qrels)
    assert summary["map"] == pytest.approx(reference["map"], abs=TOL)
    assert set(per_query) == {f"q{q}" for q in range(25)}


def test_readers_return_dicts(tmp_path):
    (tmp_path / "q.txt").write_text("1 0 a 2\n1 0 b -1\n2 0 a 0\n")
    (tmp_path / "r.txt").write_text("1 Q0 a 1 -0.5 x\n1 Q0 c 2 1e3 x\n")
    assert read_qrels(tmp_path / "q.txt") == {"1": {"a": 2, "b": -1}, "2": {"a": 0}}
    assert read_run(tmp_path / "r.txt") == {"1": {"a": -0.5, "c": 1000.0}}


GOOD_RUN = "q1 Q0 d1 1 0.9 tag\nq1 Q0 d2 2 0.5 tag\n"
GOOD_QRELS = "q1 0 d1 1\n"


@pytest.mark.parametrize("run_text, qrels_text, metric, message", [
    ("q1 Q0 d1 1 0.9\n", GOOD_QRELS, "map", "run.txt:1: expected 6 fields"),
    (GOOD_RUN + "q1 Q0 d3 3 abc tag\n", GOOD_QRELS, "map",
     "run.txt:3: score 'abc' is not a number"),
    (GOOD_RUN + "q1 Q0 d3 3 nan tag\n", GOOD_QRELS, "map",
     "run.txt:3: score 'nan' is not a number"),
    (GOOD_RUN + "q1 Q0 d3 x 0.1 tag\n", GOOD_QRELS, "map", "run.txt:3: rank 'x' is not an integer"),
    (GOOD_RUN + "q1 Q0 d1 3 0.1 tag\n", GOOD_QRELS, "map",
     "run.txt:3: document 'd1' appears twice for query 'q1'"),
    (GOOD_RUN, "q1 0 d1\n", "map", "qrels.txt:1: expected 4 fields"),
    (GOOD_RUN, "q1 0 d1 yes\n", "map", "qrels.txt:1: rel 'yes' is not an integer"),
    (GOOD_RUN, "q1 0 d1 1.5\n", "map", "qrels.txt:1: rel '1.5' is not an integer"),
    (GOOD_RUN, GOOD_QRELS + "\nq1 0 d1 0\n", "map",
     "qrels.txt:3: document 'd1' judged twice for query 'q1'"),
    (GOOD_RUN, "q2 0 d1 1\n", "map", "no query has both results"),
    (GOOD_RUN, GOOD_QRELS, "P_x", "unknown metric 'P_x'"),
    (GOOD_RUN, GOOD_QRELS, "bpref", "unknown metric 'bpref'"),
])
def test_bad_input_is_one_line_error(tmp_path, capsys, monkeypatch, run_text, qrels_text,
                                     metric, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.txt").write_text(run_text)
    (tmp_path / "qrels.txt").write_text(qrels_text)
    code, out, err = run_eval(capsys, "--run", "run.txt", "--qrels", "qrels.txt", "-m", metric)
    assert code == 2 and out == ""
    assert err.startswith(f"mmkit eval: error: {message}") and err.count("\n") == 1


TWO_RUN = ("q1 Q0 d1 1 0.9 tag\nq1 Q0 d2 2 0.8 tag\nq1 Q0 d3 3 0.7 tag\n"
           "q2 Q0 d1 1 0.9 tag\nq2 Q0 d4 2 0.6 tag\nq2 Q0 d2 3 0.5 tag\n")
TWO_QRELS = "q1 0 d1 1\nq1 0 d3 1\nq2 0 d2 1\nq2 0 d5 1\n"


@pytest.mark.parametrize("bom_in", [("run",), ("qrels",), ("run", "qrels")])
def test_byte_order_mark_is_not_part_of_the_first_id(tmp_path, capsys, bom_in):
    """Files saved by Windows editors start with a UTF-8 BOM: the scores do not change."""
    plain, marked = tmp_path / "plain", tmp_path / "bom"
    plain.mkdir(), marked.mkdir()
    for name, text in (("run", TWO_RUN), ("qrels", TWO_QRELS)):
        (plain / f"{name}.txt").write_text(text, encoding="utf-8")
        (marked / f"{name}.txt").write_text(text, encoding="utf-8-sig" if name in bom_in
                                            else "utf-8")
    assert (marked / f"{bom_in[0]}.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    results = []
    for folder in (plain, marked):
        code, out, err = run_eval(capsys, "--run", folder / "run.txt", "--qrels",
                                  folder / "qrels.txt", "-q", "--json", "-m", "map", "num_rel_ret")
        assert code == 0 and err == ""
        results.append(json.loads(out))
    assert results[1] == results[0]
    assert sorted(results[1]["per_query"]) == ["q1", "q2"]
    assert read_run(marked / "run.txt") == read_run(plain / "run.txt")
    assert read_qrels(marked / "qrels.txt") == read_qrels(plain / "qrels.txt")
    reference = pytrec_eval.RelevanceEvaluator(read_qrels(plain / "qrels.txt"), {"map"}).evaluate(
        read_run(plain / "run.txt"))
    want = np.mean([values["map"] for values in reference.values()])
    assert results[1]["metrics"]["map"] == pytest.approx(want, abs=TOL)


def test_unreadable_files(tmp_path, capsys):
    (tmp_path / "qrels.txt").write_text(GOOD_QRELS)
    (tmp_path / "binary.txt").write_bytes(b"q1 Q0 d1 1 0.5 tag\n\xff\xfe\n")
    cases = [(tmp_path / "missing.txt", "missing.txt: cannot read"),
             (tmp_path, "cannot read"),
             (tmp_path / "binary.txt", "binary.txt:2: not UTF-8 text")]
    for path, message in cases:
        code, out, err = run_eval(capsys, "--run", path, "--qrels", tmp_path / "qrels.txt")
        assert code == 2 and out == "" and message in err and err.count("\n") == 1
    with pytest.raises(InputError, match="cannot read"):
        read_qrels(tmp_path / "missing.txt")


def test_bad_level_and_usage(tmp_path, capsys):
    (tmp_path / "r.txt").write_text(GOOD_RUN)
    (tmp_path / "q.txt").write_text(GOOD_QRELS)
    code, _, err = run_eval(capsys, "--run", tmp_path / "r.txt", "--qrels", tmp_path / "q.txt",
                            "-l", "0")
    assert code == 2 and "level" in err
    code, _, err = run_eval(capsys, "--qrels", tmp_path / "q.txt")
    assert code == 2 and "--run" in err


def cli(*argv):
    code = "from mmkit.metrics.trec import eval_main; import sys; sys.exit(eval_main())"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)],
                          capture_output=True, text=True)


@pytest.mark.subprocess
def test_cli_subprocess(tmp_path):
    run, qrels = write_collection(tmp_path, 5)
    done = cli("--run", run, "--qrels", qrels, "-m", "map", "--json")
    summary, _ = pytrec_reference(run, qrels)
    assert done.returncode == 0
    assert json.loads(done.stdout)["metrics"]["map"] == pytest.approx(summary["map"], abs=TOL)
    (tmp_path / "bad.txt").write_text("q1 Q0 d1 1 abc tag\n")
    done = cli("--run", tmp_path / "bad.txt", "--qrels", qrels)
    assert done.returncode == 2 and done.stdout == ""
    bad = tmp_path / "bad.txt"
    assert done.stderr == f"mmkit eval: error: {bad}:1: score 'abc' is not a number\n"
