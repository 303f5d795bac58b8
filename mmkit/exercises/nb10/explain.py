"""Exercise of notebook 10, section 5 (explanations): the energy-based pointing game.

The pointing game of :func:`mmkit.challenges.explain.pointing_game` looks at one pixel of
the heat map, its maximum. The energy-based variant (Wang et al., 2020, Score-CAM) looks at
all of it: the fraction of the map's mass that falls inside the named object's bounding box.
The checker recomputes it for the first :data:`N_CAPTIONS` captions of the notebook's game
(the first caption of each test scene of the evaluation world, the ``joint`` method).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from mmkit.challenges.explain import (
    caption_heat_maps,
    heat_peaks,
    object_footprints,
    pointing_hits,
)
from mmkit.errors import InputError
from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.methods import get_method
from mmkit.scoring import eval_world

#: how many captions the exercise averages over
N_CAPTIONS = 100
#: the checker's tolerance (heat maps differ by ~1e-5 between batchings and thread counts)
TOLERANCE = 1e-3


def box_energy(heat: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The energy-based pointing game: for each map, the heat map's mass inside the
    bounding box of the object's footprint (rows and columns of its first to its last
    pixel, inclusive) over its total mass. float [N, S, S], bool [N, S, S] -> float [N]."""
    heat = np.asarray(heat, np.float64)
    masks = np.asarray(masks, bool)
    if heat.shape != masks.shape or heat.ndim != 3:
        raise InputError(f"box_energy: heat and masks must both be [N, S, S], got "
                         f"{heat.shape} and {masks.shape}")
    out = np.zeros(len(heat))
    for n, (h, m) in enumerate(zip(heat, masks)):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        box = h[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        out[n] = box.sum() / h.sum()
    return out


@lru_cache(maxsize=1)
def _maps() -> tuple[np.ndarray, np.ndarray]:
    world = eval_world()
    scenes = world.indices("test")[:N_CAPTIONS]
    caps = world.caption_indices(scenes, first=1)
    method = get_method("joint", progress=False)
    images = np.stack([world.render(int(i)) for i in scenes])
    heat = caption_heat_maps(method, images, method.embed_texts([world.captions[int(c)]
                                                                 for c in caps]))
    return heat, object_footprints(world, scenes, 0, size=heat.shape[1])


def solution_energy_pointing(heat: np.ndarray | None = None,
                             footprints: np.ndarray | None = None) -> float:
    """Exercise 5, a worked solution: pass the notebook's ``game.heat[:100]`` and
    ``game.footprints[:100]`` (by default they are recomputed)."""
    if heat is None or footprints is None:
        heat, footprints = _maps()
    fractions = []
    for h, mask in zip(heat[:N_CAPTIONS], footprints[:N_CAPTIONS]):
        rows, cols = np.nonzero(mask)                       # the object's pixels
        box = h[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        fractions.append(box.sum() / h.sum())                # heat in the box / all heat
    return float(np.mean(fractions))


def check_energy_pointing(answer: float | None) -> Feedback:
    """Exercise: the mean energy-based pointing score of the first 100 captions."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with one number between 0 and 1, got {answer!r}")
    heat, masks = _maps()
    expected = float(box_energy(heat, masks).mean())
    if close(value, expected, TOLERANCE):
        hits = float(pointing_hits(heat_peaks(heat), masks).mean())
        area = float(np.mean([(m.any(1).sum() * m.any(0).sum()) / m.size for m in masks]))
        return Feedback(True, f"{expected:.3f} of the heat lies in the object's box, which "
                              f"covers {area:.3f} of the image on average (the peak hits "
                              f"{hits:.3f} of the time)")
    inside = float(np.mean([(h * m).sum() / h.sum() for h, m in zip(heat, masks)]))
    if close(value, inside, TOLERANCE):
        return Feedback(False, "that is the mass inside the footprint itself; use its bounding "
                               "box (first to last row and column that hold object pixels)")
    if close(value, float(pointing_hits(heat_peaks(heat), masks).mean()), TOLERANCE):
        return Feedback(False, "that is the pointing game's hit rate; the energy game sums "
                               "the heat inside the box and divides by the map's total")
    if not 0 <= value <= 1:
        return Feedback(False, f"a fraction of the heat lies between 0 and 1, got {value:.4f}")
    return Feedback(False, "for each of game.heat[:100]: rows/cols of game.footprints[n] "
                           "(np.flatnonzero(mask.any(1)), ...), heat[box].sum() / heat.sum(); "
                           "then the mean")


__all__ = [
    "N_CAPTIONS",
    "TOLERANCE",
    "box_energy",
    "check_energy_pointing",
    "solution_energy_pointing",
]
