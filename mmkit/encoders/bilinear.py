"""Compact bilinear pooling: a D-dimensional random projection of the outer product
``a b^T`` of two feature vectors, computed without ever forming it (Tensor Sketch).

The bilinear (outer-product) feature ``vec(a b^T)`` float [da * db] lets a linear model on
top use every pairwise interaction ``a_i b_j`` of two modalities, but it is far too large
(2048 x 2048 = 4M). Tensor Sketch (Pham & Pagh 2013) projects it to D dimensions in
O(da + db + D log D): count-sketch each input with its own random hash ``h: [d] -> [D]``
and signs ``s: [d] -> {-1, +1}``, and multiply the two sketches in the frequency domain
(a circular convolution). The result is exactly the count sketch of ``vec(a b^T)`` with the
combined hash ``(h_a(i) + h_b(j)) mod D`` and sign ``s_a(i) s_b(j)``
(:func:`explicit_outer_sketch`, the slow reference), and inner products are preserved in
expectation: ``E <Psi(a, b), Psi(a', b')> = <a, a'> <b, b'>``. Gao et al. 2016 ("Compact
Bilinear Pooling") use it to pool CNN features; Fukui et al. 2016 (MCB) to fuse image and
question features for VQA, with a signed square root and L2 normalisation after it.

Needs torch (imported on demand: ``from mmkit.encoders.bilinear import ...``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.errors import InputError

#: added under the signed square root so that its gradient stays finite at 0
SQRT_EPS = 1e-12


def _check_features(x, dim: int | None, name: str, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{who}: {name} must be a torch.Tensor [B, d], got {type(x).__name__}")
    if x.ndim != 2:
        raise InputError(f"{who}: {name} must be 2-D [B, d], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{who}: {name} must be floating point, got {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{who}: {name} must have {dim} features per row, got shape "
                         f"{tuple(x.shape)}")
    return x


def _check_hash(h, s, d: int, out_dim: int, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    h, s = torch.as_tensor(h), torch.as_tensor(s)
    if h.shape != (d,) or s.shape != (d,):
        raise InputError(f"{who}: hash h and signs s must both have shape ({d},) (one per "
                         f"input feature), got {tuple(h.shape)} and {tuple(s.shape)}")
    if h.is_floating_point() or h.dtype == torch.bool:
        raise InputError(f"{who}: hash h must be integers in [0, {out_dim}), got {h.dtype}")
    if d and (int(h.min()) < 0 or int(h.max()) >= out_dim):
        raise InputError(f"{who}: hash h must lie in [0, {out_dim}), got values in "
                         f"[{int(h.min())}, {int(h.max())}]")
    return h, s


def count_sketch(x: torch.Tensor, h: torch.Tensor, s: torch.Tensor,
                 out_dim: int) -> torch.Tensor:
    """Count sketch of each row: ``y[b, k] = sum_{i: h[i] = k} s[i] x[b, i]``.

    ``x`` float [B, d]; ``h`` int64 [d] in ``[0, out_dim)``; ``s`` [d] of +-1 (any dtype);
    returns float [B, out_dim] (``x``'s dtype and device). Linear in ``x`` (differentiable)."""
    x = _check_features(x, None, "x", "count_sketch")
    if int(out_dim) < 1:
        raise InputError(f"count_sketch: out_dim must be >= 1, got {out_dim}")
    h, s = _check_hash(h, s, x.shape[1], int(out_dim), "count_sketch")
    h = h.to(device=x.device, dtype=torch.long)
    s = s.to(device=x.device, dtype=x.dtype)
    return x.new_zeros(len(x), int(out_dim)).index_add_(1, h, x * s)


def explicit_outer_sketch(a: torch.Tensor, b: torch.Tensor, h_a: torch.Tensor,
                          s_a: torch.Tensor, h_b: torch.Tensor, s_b: torch.Tensor,
                          out_dim: int) -> torch.Tensor:
    """The slow reference: the count sketch of the flattened outer product ``a b^T``
    float [B, da * db] with hash ``(h_a(i) + h_b(j)) mod out_dim`` and sign
    ``s_a(i) s_b(j)``. ``a`` float [B, da], ``b`` float [B, db] -> float [B, out_dim].
    Memory O(B da db): for small dimensions and tests."""
    who = "explicit_outer_sketch"
    a = _check_features(a, None, "a", who)
    b = _check_features(b, None, "b", who)
    if len(a) != len(b):
        raise InputError(f"{who}: a and b must have the same batch size, got {len(a)} "
                         f"and {len(b)}")
    h_a, s_a = _check_hash(h_a, s_a, a.shape[1], int(out_dim), who)
    h_b, s_b = _check_hash(h_b, s_b, b.shape[1], int(out_dim), who)
    outer = (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)           # [B, da * db]
    h = ((h_a.long()[:, None] + h_b.long()[None, :]) % int(out_dim)).reshape(-1)
    s = (s_a.to(a.dtype)[:, None] * s_b.to(a.dtype)[None, :]).reshape(-1)
    return count_sketch(outer, h, s, out_dim)


def tensor_sketch(a: torch.Tensor, b: torch.Tensor, h_a: torch.Tensor, s_a: torch.Tensor,
                  h_b: torch.Tensor, s_b: torch.Tensor, out_dim: int) -> torch.Tensor:
    """The fast way to the same result as :func:`explicit_outer_sketch`: the circular
    convolution of the two count sketches, ``irfft(rfft(CS(a)) * rfft(CS(b)))``.
    ``a`` float [B, da], ``b`` float [B, db] -> float [B, out_dim]."""
    if len(a) != len(b):
        raise InputError(f"tensor_sketch: a and b must have the same batch size, got "
                         f"{len(a)} and {len(b)}")
    fa = torch.fft.rfft(count_sketch(a, h_a, s_a, out_dim), dim=1)
    fb = torch.fft.rfft(count_sketch(b, h_b, s_b, out_dim), dim=1)
    return torch.fft.irfft(fa * fb, n=int(out_dim), dim=1)


def signed_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) sqrt(|x|)`` elementwise (with :data:`SQRT_EPS` under the root, so the
    gradient is finite at 0); float [...] -> same shape."""
    return torch.sign(x) * torch.sqrt(x.abs() + SQRT_EPS)


class CompactBilinearPooling(nn.Module):
    """``Psi(a, b)``: compact bilinear pooling of ``a`` float [B, in_dim_a] and ``b``
    float [B, in_dim_b] into float [B, out_dim] (Tensor Sketch).

    The hashes ``h_a`` int64 [in_dim_a], ``h_b`` int64 [in_dim_b] (uniform in
    ``[0, out_dim)``) and signs ``s_a``, ``s_b`` float32 (+-1) are fixed buffers drawn from
    ``torch.Generator().manual_seed(seed)`` (same seed -> same module, on any device; they
    are saved in the ``state_dict``). There are no trainable parameters.

    ``signed_sqrt`` then ``l2`` (both on by default, as Gao et al. and Fukui et al.)
    post-process the sketch: ``y <- sign(y) sqrt(|y|)``, ``y <- y / ||y||``. With both off,
    ``forward`` returns the raw sketch (:func:`tensor_sketch`), whose inner products
    estimate ``<a, a'> <b, b'>`` without bias.
    """

    def __init__(self, in_dim_a: int, in_dim_b: int, out_dim: int, seed: int = 0,
                 signed_sqrt: bool = True, l2: bool = True) -> None:
        super().__init__()
        for name, v in (("in_dim_a", in_dim_a), ("in_dim_b", in_dim_b), ("out_dim", out_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"CompactBilinearPooling: {name} must be a positive int, "
                                 f"got {v!r}")
        self.in_dim_a, self.in_dim_b, self.out_dim = in_dim_a, in_dim_b, out_dim
        self.seed = int(seed)
        self.signed_sqrt, self.l2 = bool(signed_sqrt), bool(l2)
        g = torch.Generator().manual_seed(self.seed)
        for tag, d in (("a", in_dim_a), ("b", in_dim_b)):
            self.register_buffer(f"h_{tag}", torch.randint(0, out_dim, (d,), generator=g))
            signs = torch.randint(0, 2, (d,), generator=g).float() * 2 - 1
            self.register_buffer(f"s_{tag}", signs)

    def sketch(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The raw Tensor Sketch float [B, out_dim] (no square root, no normalisation)."""
        who = type(self).__name__
        a = _check_features(a, self.in_dim_a, "a", who)
        b = _check_features(b, self.in_dim_b, "b", who)
        if len(a) != len(b):
            raise InputError(f"{who}: a and b must have the same batch size, got {len(a)} "
                             f"and {len(b)}")
        return tensor_sketch(a, b, self.h_a, self.s_a, self.h_b, self.s_b, self.out_dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a`` float [B, in_dim_a], ``b`` float [B, in_dim_b] -> float [B, out_dim]."""
        y = self.sketch(a, b)
        if self.signed_sqrt:
            y = signed_sqrt(y)
        if self.l2:
            y = F.normalize(y, dim=1)
        return y

    def extra_repr(self) -> str:
        return (f"in_dim_a={self.in_dim_a}, in_dim_b={self.in_dim_b}, "
                f"out_dim={self.out_dim}, seed={self.seed}, signed_sqrt={self.signed_sqrt}, "
                f"l2={self.l2}")
