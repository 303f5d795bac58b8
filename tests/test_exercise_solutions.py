"""The worked solutions of the notebooks' exercises (``SOLUTIONS`` in each
``mmkit.exercises.nbNN``) pass their checkers, are offered by
``mmkit.exercises.solution(notebook, k)``, and recompute the answer instead of calling the
checker's own reference code.

Each test builds the small inputs the notebook's exercise cell hands the checker (small
worlds, random scores), calls the solution with them and asks the checker.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import mmkit.exercises
from mmkit.errors import InputError
from mmkit.exercises import (nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09,
                             nb11)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NOTEBOOKS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "11")
ROOT = Path(__file__).resolve().parents[1]


def _module(nb: str):
    return importlib.import_module(f"mmkit.exercises.nb{nb}")


def _exercise_cells(nb: str) -> tuple[str, list[int]]:
    """(the markdown cell with '## Exercises', the exercise numbers listed in it and in the
    markdown cells after it) of notebook ``nb``."""
    path = next((ROOT / "notebooks").glob(f"{nb}_*.ipynb"))
    cells = json.loads(path.read_text())["cells"]
    start = next(i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and "## Exercises" in "".join(c["source"]))
    numbers = []
    for c in cells[start:]:
        if c["cell_type"] == "markdown":
            text = "".join(c["source"]).split("## Exercises")[-1].split("<details>")[0]
            numbers += [int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)]
    return "".join(cells[start]["source"]), numbers


# ----------------------------------------------------------------- the solution() door
@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_every_exercise_has_a_solution_shown_on_request(nb):
    text, numbers = _exercise_cells(nb)
    solutions = _module(nb).SOLUTIONS
    assert sorted(solutions) == sorted(numbers) and numbers, (nb, numbers)
    assert f'`mmkit.exercises.solution("{nb}", k)`' in text       # the hint for the learner
    for k in numbers:
        shown = mmkit.exercises.solution(nb, k)
        assert shown.function is solutions[k]
        assert repr(shown).startswith(f"# notebook {nb}, exercise {k}: a solution\n")
        assert f"def {solutions[k].__name__}(" in repr(shown)
        assert solutions[k].__doc__ and f"Exercise {k}" in solutions[k].__doc__
    assert mmkit.exercises.solution(int(nb), numbers[0]).function is solutions[numbers[0]]


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_an_unknown_exercise_is_one_line(nb):
    for wrong in (0, 99):
        with pytest.raises(InputError) as info:
            mmkit.exercises.solution(nb, wrong)
        message = str(info.value)
        assert "\n" not in message and f"exercise {wrong}" in message
        assert "solutions: " + ", ".join(map(str, sorted(_module(nb).SOLUTIONS))) in message


#: the checkers' own reference code: a solution that called it would check it with itself
REFERENCES = {"oracle_hit_rate", "spatial_pyramid", "colour_histogram", "synonym_neighbour_rate",
              "caption_agreement", "word_query", "_chance_p10", "infonce_value", "modality_gap",
              "TripletMarginLoss", "TripletMarginMiner", "retrieval_scores", "ap_conventions",
              "_ap", "_per_image", "image_text_retrieval", "hit_rate_at_k", "bytes_per_vector",
              "merge_topk", "repeated_gallery_recall", "fold_mean_recall", "conse_margins",
              "right_margins", "right_ranks", "_conse_scores", "conse", "top_concepts",
              "_check_one_caption", "_check_chance"}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_solutions_recompute_instead_of_calling_the_checker(nb):
    for k, function in _module(nb).SOLUTIONS.items():
        tree = ast.parse(inspect.getsource(function).strip())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        called = names & REFERENCES | {n for n in names if n.startswith("check_")}
        assert not called, (nb, k, called)


# ----------------------------------------------------------------------- notebook 00
def test_nb00_solutions(small_world):
    w = small_world
    assert nb00.check_most_ambiguous_caption(w, 3, nb00.SOLUTIONS[1](w, 3))
    for split in ("test", "val"):
        images = w.indices(split)
        assert nb00.check_oracle_r1(w, images, nb00.SOLUTIONS[2](w, images))


@pytest.mark.slow  # pYIN on 30 clips, and librosa's numba compilation on a first call
def test_nb00_lowest_note_solution():
    answer = nb00.SOLUTIONS[3]()
    assert nb00.check_lowest_note(answer)
    assert not nb00.check_lowest_note(None)
    assert not nb00.check_lowest_note("teal" if answer != "teal" else "red")


# ----------------------------------------------------------------------- notebook 01
def test_nb01_solutions(small_world):
    images = small_world.images[small_world.indices("test")]
    for k in (0, 5):
        assert nb01.check_cell_histogram(images[k], 2, 1, 0, nb01.SOLUTIONS[1](images[k]))
    assert nb01.check_cell_histogram(images[1], 4, 2, 3, nb01.SOLUTIONS[1](images[1], 4, 2, 3))
    assert nb01.check_se_parameters(96, 8, nb01.SOLUTIONS[2](96, 8))
    rng = np.random.default_rng(0)
    n = 40
    labels = rng.integers(0, 5, n)
    styles = rng.integers(0, 3, n)
    positives = (labels[:, None] == labels[None, :]) & ~np.eye(n, dtype=bool)
    scores = np.where(np.eye(n, dtype=bool), -np.inf, rng.random((n, n)) + 0.3 * positives)
    assert nb01.check_style_map(scores, positives, styles, 1,
                                nb01.SOLUTIONS[3](scores, positives, styles, 1))


# ----------------------------------------------------------------------- notebook 02
@pytest.mark.slow  # importing transformers for MiniLM's tokenizer takes ~15 s here
def test_nb02_wordpiece_solution():
    from mmkit.features.minilm import load_minilm_tokenizer

    try:
        wp = load_minilm_tokenizer()
    except (OSError, InputError) as exc:  # no MiniLM folder on this machine
        pytest.skip(f"MiniLM tokenizer not available: {exc}")
    caption = "A pinstriped rhombus next to a sign that says sushi."
    assert nb02.check_wordpiece_count(caption, nb02.SOLUTIONS[1](wp, caption))


def test_nb02_solutions(small_world):
    from mmkit.features.text import WordTokenizer
    from mmkit.features.word2vec import synonym_groups

    tok, groups = WordTokenizer.world(), synonym_groups()
    vectors = np.random.default_rng(0).normal(size=(tok.vocab_size, 16)).astype(np.float32)
    assert nb02.check_synonym_top3(vectors, tok, groups,
                                   nb02.SOLUTIONS[2](vectors, tok, groups))
    w = small_world
    caps = w.caption_indices(w.indices("test"))
    grades = set()
    for a, b in zip(caps[:40], caps[7:47]):
        answer = nb02.SOLUTIONS[3](w, int(a), int(b))
        grades.add(answer)
        assert nb02.check_caption_grade(w, int(a), int(b), answer)
    assert len(grades) >= 2
    truth = ["cafe", "", "taxi", "cafe", "cafe", "", "bar"]
    reads = ["cafe", "cafe", "taxi", "", "cafe", "", "cafe"]
    assert nb02.check_word_query(reads, truth, "cafe", nb02.SOLUTIONS[4](reads, truth, "cafe"))
    assert nb02.check_word_query(reads, truth, "dock", nb02.SOLUTIONS[4](reads, truth, "dock"))


# ----------------------------------------------------------------------- notebook 03
@pytest.mark.slow  # librosa's pYIN compiles with numba on its first call
def test_nb03_note_colour_solution():
    from mmkit.data import World

    solo = World(n=40, seed=5, noise=0.0, max_objects=1, sign_prob=0.0)   # the notebook's
    assert nb03.check_note_colour(solo, 3, nb03.SOLUTIONS[1](solo, 3))


@pytest.mark.slow  # the first log-mel of a session loads librosa's numba code (~8 s)
def test_nb03_frame_count_solution():
    assert nb03.check_frame_count(nb03.SOLUTIONS[2]())


def test_nb03_chance_solution(small_world):
    test = small_world.indices("test")
    answer = nb03.SOLUTIONS[3](small_world, test)
    assert nb03.check_colour_chance_p10(small_world, test, answer)
    assert not nb03.check_colour_chance_p10(small_world, test, None)
    assert not nb03.check_colour_chance_p10(small_world, test, answer + 0.01)


# ----------------------------------------------------------------------- notebook 04
def test_nb04_solutions():
    from mmkit.data import World

    sim = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.5, 0.3, 0.7]])
    assert nb04.check_infonce(sim, 0.5, nb04.SOLUTIONS[1](sim, 0.5))
    assert nb04.check_captions_to_fraction(0.317, 0.608, 2205,
                                           nb04.SOLUTIONS[2](0.317, 0.608, 2205), oracle_r1=0.525)
    assert not nb04.check_captions_to_fraction(0.317, 0.608, 2205, None)
    assert not nb04.check_captions_to_fraction(0.317, 0.608, 2205,
                                               nb04.SOLUTIONS[2](0.317, 0.608, 2205) + 1)
    world = World(n=300, seed=1)
    rel = world.caption_relevance()
    answers = set()
    for j in range(0, len(world.captions), 37):
        full = np.flatnonzero(rel[j] == 3)
        if len(full) >= 3:
            a, b = int(full[1]), int(full[2])
            answer = nb04.SOLUTIONS[3](world, j, a, b)
            answers.add(answer)
            assert nb04.check_likelier_image(world, j, a, b, answer)
    assert len(answers) >= 2
    rng = np.random.default_rng(0)
    caps = world.caption_indices(world.indices("test"))
    image, speech = rng.normal(size=(50, 8)), rng.normal(0.3, 1.0, size=(len(caps), 8))
    for voice in sorted({world.speaker_of(int(j)) for j in caps})[:2]:
        answer = nb04.SOLUTIONS[4](world, caps, image, speech, voice)
        assert nb04.check_voice_gap(world, caps, image, speech, voice, answer)
        assert not nb04.check_voice_gap(world, caps, image, speech, voice, None)
        assert not nb04.check_voice_gap(world, caps, image, speech, voice, answer + 0.01)


# ----------------------------------------------------------------------- notebook 05
def test_nb05_solutions():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(12, 6))
    batch_labels = np.repeat(np.arange(4), 3)
    answer_1 = nb05.SOLUTIONS[1](batch, batch_labels, 0.1)
    assert 0 < answer_1 < 1
    assert nb05.check_active_fraction(batch, batch_labels, 0.1, answer_1)
    answer_2 = nb05.SOLUTIONS[2](batch, batch_labels, 0.3)
    assert answer_2 > 0
    assert nb05.check_semihard_count(batch, batch_labels, 0.3, answer_2)
    # the notebook's toy batch of section 2: torch tensors, 8 classes x 8 items
    import torch

    g = torch.Generator().manual_seed(0)
    nb_batch = torch.randn(64, 16, generator=g, dtype=torch.float64)
    nb_labels = torch.arange(64) % 8
    assert nb05.check_active_fraction(nb_batch, nb_labels, 0.1,
                                      nb05.SOLUTIONS[1](nb_batch, nb_labels, 0.1))
    assert nb05.check_semihard_count(nb_batch, nb_labels, 0.3,
                                     nb05.SOLUTIONS[2](nb_batch, nb_labels, 0.3))
    labels = rng.integers(0, 10, 200)
    pixels = rng.random((200, 64)) + 0.5 * np.eye(10)[labels] @ rng.random((10, 64))
    assert nb05.check_map_at_r(pixels, labels, nb05.SOLUTIONS[3](pixels, labels))


# ----------------------------------------------------------------------- notebook 06
def test_nb06_solutions():
    assert nb06.check_lambda(0.25, nb06.SOLUTIONS[1](0.25))
    rng = np.random.default_rng(0)
    zi, zt = rng.normal(size=(40, 8)), rng.normal(0.2, 1.0, size=(30, 8))
    assert nb06.check_centroid_gap(zi, zt, nb06.SOLUTIONS[2](zi, zt))
    gen, real = 0.1 * rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    assert nb06.check_spread(gen, real, nb06.SOLUTIONS[3](gen, real))


# ----------------------------------------------------------------------- notebook 07
def test_nb07_solutions(small_world):
    from mmkit.fusion.composed import make_composed_queries

    a, b = np.array([[4.0, 3, 2, 1]]), np.array([[3.0, 1, 4, 2]])
    assert nb07.check_rrf_score(a, b, 10, 2, nb07.SOLUTIONS[1](a, b, 10, 2))
    tied = np.array([[1.0, 2, 2, 0]])
    assert nb07.check_rrf_score(tied, b, 60, 2, nb07.SOLUTIONS[1](tied, b, 60, 2))
    weights, present = [0.2, 0.5, 0.3], [True, False, True]
    assert nb07.check_renormalised(weights, present, nb07.SOLUTIONS[2](weights, present))
    test = small_world.indices("test")
    comp = make_composed_queries(small_world, test, test)
    for q in range(min(3, len(comp.references))):
        ref, mod = int(comp.references[q]), comp.modifications[q]
        answer = nb07.SOLUTIONS[3](small_world, ref, mod, test)
        assert answer
        assert nb07.check_composed_targets(small_world, ref, mod, test, answer)


# ----------------------------------------------------------------------- notebook 08
def test_nb08_solutions(small_world):
    assert nb08.check_ap_by_hand(nb08.SOLUTIONS[1]())
    assert nb08.check_library(nb08.SOLUTIONS[2]())
    w = small_world
    test = [int(i) for i in w.indices("test")]
    captions = np.array([j for i in test for j in w.captions_of(i)])
    relevance = w.caption_relevance(captions)[:, test]
    caption_image = np.array([test.index(int(w.caption_image[j])) for j in captions])
    rng = np.random.default_rng(0)
    noise = rng.random(relevance.shape)
    for scores_d, scores_a in ((relevance + noise, noise), (noise, noise + 0.01 * noise)):
        answer = nb08.SOLUTIONS[3](scores_d, scores_a, relevance, caption_image)
        assert nb08.check_image_level_test(scores_d, scores_a, relevance, caption_image, answer)
    image_scores = rng.normal(size=(len(test), len(captions)))
    assert nb08.check_i2t_recall(image_scores, caption_image,
                                 nb08.SOLUTIONS[4](image_scores, caption_image, 5), k=5)


# ----------------------------------------------------------------------- notebook 09
def test_nb09_solutions():
    assert nb09.check_bytes_per_vector("ivfpq", 256, nb09.SOLUTIONS[1](32), m=32)
    assert nb09.check_machines(10**9, 96, "ivfpq", 64e9, nb09.SOLUTIONS[2](10**9, 20, 64e9),
                               m=20)
    rng = np.random.default_rng(0)
    k, queries, shards = 10, 4, 3
    ids = rng.permutation(shards * 50).reshape(shards, 50)         # disjoint ids per shard
    scores, hits = [], []
    for s in range(shards):
        sc = np.round(rng.random((queries, 50)), 1)                # ties across shards
        order = np.lexsort((np.broadcast_to(ids[s], sc.shape), -sc), axis=1)[:, :k]
        scores.append(np.take_along_axis(sc, order, 1).astype(np.float32))
        hits.append(ids[s][order].astype(np.int64))
    assert nb09.check_merge(scores, hits, k, nb09.SOLUTIONS[3](scores, hits, k))


# ----------------------------------------------------------------------- notebook 11
@pytest.fixture
def runs():
    """A text->image and an image->text run: 20 images, 5 captions each (as the checkers'
    tests build them)."""
    from mmkit.methods.evaluate import DirectionRun

    rng = np.random.default_rng(3)
    n_images = 20
    scores = rng.normal(size=(5 * n_images, n_images)).astype(np.float32)
    scores[np.arange(5 * n_images), np.arange(5 * n_images) // 5] += 1.0
    pos = (np.arange(5 * n_images)[:, None] // 5) == np.arange(n_images)[None, :]
    t2i = DirectionRun("text->image", scores, pos.astype(np.int8) * 3, pos,
                       np.arange(5 * n_images), np.arange(n_images))
    i2t = DirectionRun("image->text", scores.T.copy(), (pos.T * 3).astype(np.int8),
                       pos.T.copy(), np.arange(n_images), np.arange(5 * n_images))
    return t2i, i2t


def test_nb11_solutions(runs):
    t2i, i2t = runs
    answers = {1: nb11.SOLUTIONS[1](i2t), 2: nb11.SOLUTIONS[2](t2i), 3: nb11.SOLUTIONS[3](t2i)}
    checks = {1: lambda a: nb11.check_last_caption_only(i2t, a),
              2: lambda a: nb11.check_repeated_gallery(t2i, a, k=10),
              3: lambda a: nb11.check_fold_mean(t2i, a, k=5)}
    for k, check in checks.items():
        assert check(answers[k]), (k, check(answers[k]))
        assert not check(None) and "no answer" in check(None).message
        assert not check(answers[k] + 0.01)
    rng = np.random.default_rng(11)
    labels = rng.normal(size=(60, 16)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    logits = rng.normal(scale=2.0, size=(13, 60))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    right = np.array([2, 4, 12, 5, 3, 1])
    queries = labels[probs[right].argmax(1)] + 0.8 * rng.normal(size=(6, 16))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    answer = nb11.SOLUTIONS[4](probs, labels, queries, right)
    assert sorted(answer) == [1, 3, 10, 30]
    assert nb11.check_mean_rank(probs, labels, queries, right, answer)
    assert not nb11.check_mean_rank(probs, labels, queries, right, None)
    assert not nb11.check_mean_rank(probs, labels, queries, right,
                                    {t: v + 0.5 for t, v in answer.items()})
