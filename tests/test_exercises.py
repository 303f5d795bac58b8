"""The exercise checkers accept the right answers and reject wrong ones."""
from __future__ import annotations

import numpy as np

from mmkit.data.relevance import oracle_hit_rate
from mmkit.exercises import Feedback, nb00


def test_feedback_prints_one_line():
    fb = Feedback(True, "well done")
    assert bool(fb) and str(fb) == "correct: well done"
    assert not nb00.check_pitch_attribute(None)
    assert "no answer yet" in str(nb00.check_pitch_attribute(None))


def test_nb00_checkers(small_world):
    w = small_world
    caps = w.captions_of(3)
    counts = (w.caption_relevance(np.array(caps)) == 3).sum(1)
    best = caps[int(counts.argmax())]
    assert nb00.check_most_ambiguous_caption(w, 3, best)
    assert not nb00.check_most_ambiguous_caption(w, 3, 10**6)
    if counts.min() < counts.max():
        assert not nb00.check_most_ambiguous_caption(w, 3, caps[int(counts.argmin())])

    test = w.indices("test")
    rel, pos = w.ground_truth("text->image", test)
    r1 = float(oracle_hit_rate(rel, pos, 1).mean())
    assert nb00.check_oracle_r1(w, test, r1)
    assert not nb00.check_oracle_r1(w, test, r1 + 0.01)
    assert not nb00.check_oracle_r1(w, test, "a lot")

    assert nb00.check_pitch_attribute("Color") and nb00.check_pitch_attribute(" colour ")
    assert not nb00.check_pitch_attribute("shape")
