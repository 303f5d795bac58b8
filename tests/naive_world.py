"""Naive references for the world's ground truth, shared by tests: written from the rules in
the docstring of :mod:`mmkit.data.relevance`, one caption, image and object at a time, from the
world's raw arrays (never from ``caption_relevance``)."""
from __future__ import annotations

from mmkit.data import vocab as V


def _said_matches(mention: tuple[int, ...], obj: tuple[int, ...]) -> bool:
    """Every attribute the mention says (>= 0) equals the object's."""
    return all(m < 0 or m == o for m, o in zip(mention, obj))


def _relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """"a REL b" with image y growing downwards."""
    (xa, ya), (xb, yb) = a, b
    return {"left of": xa < xb, "right of": xa > xb, "above": ya < yb, "below": ya > yb}[relation]


def naive_grade(world, j: int, i: int) -> int:
    """Relevance 0-3 of caption ``j`` to image ``i``, from the rules of the docstring of
    mmkit.data.relevance, one object at a time."""
    s = world.caption_struct(j)
    n = int(world.n_objects[i])
    objs = [tuple(int(v) for v in world.objects[i, k]) for k in range(n)]
    xy = [(float(world.xy[i, k, 0]), float(world.xy[i, k, 1])) for k in range(n)]
    mains = [k for k in range(n) if _said_matches(s.main, objs[k])]
    if not mains:
        n_said = max(sum(m >= 0 for m in s.main), 1)
        best = max(sum(m >= 0 and m == o for m, o in zip(s.main, obj)) for obj in objs)
        return 1 if 2 * best >= n_said else 0
    ok = True
    if s.style >= 0 and s.style != int(world.styles[i]):
        ok = False
    if s.word >= 0 and s.word != int(world.words[i]):
        ok = False
    if s.relation >= 0:
        rel = V.RELATIONS[s.relation]
        ok = ok and any(a != b and _said_matches(s.second, objs[b]) and
                        _relation_holds(rel, xy[a], xy[b])
                        for a in mains for b in range(n))
    return 3 if ok else 2


def fits_fully(world, j: int, i: int) -> bool:
    return naive_grade(world, j, i) == 3
