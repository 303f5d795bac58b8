"""Feature caches: a change of inputs or configuration never serves a stale cache; a broken
file is recomputed; writes are atomic."""
from __future__ import annotations

import numpy as np

from mmkit.features.cache import array_key, cached, text_key


def test_cache_is_keyed_by_inputs_and_config(tmp_path):
    calls = []

    def compute(x, scale):
        calls.append(1)
        return x * scale

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    first = cached("f", {"x": array_key(x), "scale": 2}, lambda: compute(x, 2), folder=tmp_path)
    again = cached("f", {"x": array_key(x), "scale": 2}, lambda: compute(x, 2), folder=tmp_path)
    assert np.array_equal(first, again) and len(calls) == 1
    y = x.copy()
    y[1, 2] += 1                                     # one changed value: a new key
    assert cached("f", {"x": array_key(y), "scale": 2}, lambda: compute(y, 2),
                  folder=tmp_path)[1, 2] == 12 and len(calls) == 2
    assert cached("f", {"x": array_key(x), "scale": 3}, lambda: compute(x, 3),
                  folder=tmp_path)[0, 1] == 3 and len(calls) == 3
    assert array_key(x) != array_key(x.astype(np.float64)) != array_key(x.reshape(3, 2))
    assert text_key(["ab", "c"]) != text_key(["a", "bc"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_broken_cache_file_is_recomputed(tmp_path):
    x = np.ones(4)
    cached("g", {"x": array_key(x)}, lambda: x, folder=tmp_path)
    (path,) = tmp_path.glob("g-*.npy")
    path.write_bytes(path.read_bytes()[:20])          # truncated
    calls = []
    out = cached("g", {"x": array_key(x)}, lambda: calls.append(1) or x * 5, folder=tmp_path)
    assert calls and np.array_equal(out, x * 5)
    assert np.array_equal(np.load(path), x * 5)       # replaced
    assert np.array_equal(cached("g", {"x": array_key(x)}, lambda: x, enabled=False,
                                 folder=tmp_path), x)
