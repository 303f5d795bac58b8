"""A fused scan of one score block into a running top-k (numba, CPU only).

The torch path of :func:`mmkit.index.exact.chunked_topk` spends about as long on the ~30 small
tensor operations of candidate bookkeeping per block as on reading the block. This kernel
does both in one pass over the block, row-parallel: per group of 32 scores it takes the
maximum (a vectorised reduction); only groups that reach the row's current k-th best score
are looked at member by member, and a member that beats it is inserted into the row's sorted
top k (score descending, then key ascending: the same order as the torch path).
"""
from __future__ import annotations

import numpy as np

try:  # numba comes with librosa; imported here (0.3 s) so the kernels are cached on disk
    import numba
except ImportError:  # pragma: no cover
    numba = None

#: stands in for -inf in the kernel (fastmath assumes finite values)
EMPTY = np.float32(-3.0e38)
NO_KEY = np.iinfo(np.int64).max
_GROUP = 32


def available() -> bool:
    """Whether numba could be imported (it comes with librosa)."""
    return numba is not None


def scan_block(S, start, keys, best_s, best_p, best_key) -> None:
    """Merge block S [Q, C] (columns = database positions start..start+C) into the running
    top k (best_s [Q, k] float32, best_p / best_key [Q, k] int64), in place. Compiled on
    first use and cached on disk (module-level kernels: later processes load the machine
    code instead of compiling it for 4 s)."""
    _scan_block(S, start, keys, best_s, best_p, best_key)


if numba is not None:
    @numba.njit(inline="always", cache=True)
    def _offer(r, v, p, kp, best_s, best_p, best_key):  # pragma: no cover - jitted
        """Insert (v, p) into row r's sorted top k if it beats the k-th (ties: smaller key)."""
        k = best_s.shape[1]
        if v < best_s[r, k - 1] or (v == best_s[r, k - 1] and kp > best_key[r, k - 1]):
            return
        i = k - 1
        while i > 0 and (best_s[r, i - 1] < v or
                         (best_s[r, i - 1] == v and best_key[r, i - 1] > kp)):
            best_s[r, i] = best_s[r, i - 1]
            best_p[r, i] = best_p[r, i - 1]
            best_key[r, i] = best_key[r, i - 1]
            i -= 1
        best_s[r, i] = v
        best_p[r, i] = p
        best_key[r, i] = kp

    @numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _scan_block(S, start, keys, best_s, best_p, best_key):  # pragma: no cover - jitted
        """Groups are interleaved (group g = columns g, g + n, g + 2n, ... with n = C // 32),
        so the group maxima are 31 element-wise maxima of contiguous slices: SIMD-friendly."""
        n_rows, n_cols = S.shape
        k = best_s.shape[1]
        n = n_cols // _GROUP
        for r in numba.prange(n_rows):
            row = S[r]
            if n > 0:
                g_max = row[:n].copy()
                for j in range(1, _GROUP):
                    base = j * n
                    for g in range(n):
                        g_max[g] = max(g_max[g], row[base + g])
                for g in range(n):
                    if g_max[g] < best_s[r, k - 1]:
                        continue
                    for j in range(_GROUP):
                        c = j * n + g
                        _offer(r, row[c], start + c, keys[start + c], best_s, best_p, best_key)
            for c in range(n * _GROUP, n_cols):    # the ragged tail of a last block
                _offer(r, row[c], start + c, keys[start + c], best_s, best_p, best_key)
