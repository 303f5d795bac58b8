"""What every metric-learning loss shares: input checks, index tuples, reductions.

Index tuples follow pytorch-metric-learning (PML): pairs are ``(a1, p, a2, n)`` (anchor
``a1[i]`` with positive ``p[i]``; anchor ``a2[j]`` with negative ``n[j]``), triplets are
``(a, p, n)``; all int64 [K] index vectors into the batch.

Precision: float16 and bfloat16 embeddings are computed in float32 and the loss is returned
in the input dtype (as PML returns it); float32 and float64 are computed as they come.
"""
from __future__ import annotations

import torch
from torch import nn

from mmkit.errors import InputError
from mmkit.losses.distances import working_precision

Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def check_batch(embeddings, labels, who: str, *,
                labels_optional: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate ``embeddings`` float [N, D] and ``labels`` int [N]; returns them as tensors
    (labels on the embeddings' device). ``labels=None`` is accepted (and returned) only with
    ``labels_optional`` (a loss given an index tuple)."""
    if not isinstance(embeddings, torch.Tensor):
        raise InputError(f"{who}: embeddings must be a torch.Tensor [N, D], "
                         f"got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise InputError(f"{who}: embeddings must be 2-D [N, D], got shape "
                         f"{tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise InputError(f"{who}: embeddings must be floating point, got {embeddings.dtype}")
    if labels is None:
        if labels_optional:
            return embeddings, None
        raise InputError(f"{who}: labels are missing: pass integer labels [N]")
    try:
        labels = torch.as_tensor(labels, device=embeddings.device)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{who}: labels must be integers [N], got {type(labels).__name__}"
                         ) from None
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise InputError(f"{who}: labels must be 1-D with one label per embedding "
                         f"({len(embeddings)}), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise InputError(f"{who}: labels must be integers, got {labels.dtype}")
    return embeddings, labels


def all_pairs(labels: torch.Tensor) -> Pairs:
    """Every positive pair (same label, not itself) and every negative pair, row-major."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    a1, p = torch.where(same & ~eye)
    a2, n = torch.where(~same)
    return a1, p, a2, n


def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every valid triplet (a, p, n): label[a] == label[p], a != p, label[a] != label[n];
    in (a, p, n) lexicographic order (as PML's ``get_all_triplets_indices``)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = (same & ~eye)[:, :, None] & ~same[:, None, :]
    a, p, n = torch.where(valid)
    return a, p, n


def check_indices(indices_tuple, n_items: int, device,
                  who: str) -> tuple[torch.Tensor, ...] | None:
    """Validate an index tuple for a batch of ``n_items``: None, or 3 (triplets ``a, p, n``)
    or 4 (pairs ``a1, p, a2, n``) 1-D integer vectors, the vectors of a triplet (of a pair)
    of equal length, every index in ``[0, n_items)``. Returns them as int64 tensors on
    ``device``; a one-line :class:`~mmkit.errors.InputError` otherwise."""
    if indices_tuple is None:
        return None
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
        got = len(indices_tuple) if isinstance(indices_tuple, (tuple, list)) else \
            type(indices_tuple).__name__
        raise InputError(f"{who}: indices_tuple must have 3 (triplets) or 4 (pairs) entries, "
                         f"got {got}")
    vectors = []
    for x in indices_tuple:
        try:
            v = torch.as_tensor(x, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"{who}: indices_tuple entries must be integer index vectors, "
                             f"got {type(x).__name__}") from None
        if v.ndim != 1 or (v.numel() and (v.is_floating_point() or v.is_complex()
                                          or v.dtype == torch.bool)):
            raise InputError(f"{who}: indices_tuple entries must be 1-D integer index "
                             f"vectors, got {v.dtype} of shape {tuple(v.shape)}")
        vectors.append(v.long())
    for group in ([vectors] if len(vectors) == 3 else [vectors[:2], vectors[2:]]):
        if len({len(v) for v in group}) > 1:
            raise InputError(f"{who}: indices_tuple vectors that go together must have equal "
                             f"lengths, got {[len(v) for v in vectors]}")
    used = torch.cat(vectors)
    if len(used) and (int(used.min()) < 0 or int(used.max()) >= n_items):
        bad = int(used.min()) if int(used.min()) < 0 else int(used.max())
        raise InputError(f"{who}: indices_tuple holds index {bad}, outside the batch of "
                         f"{n_items}")
    return tuple(vectors)


def _as_index_vectors(indices_tuple, labels: torch.Tensor | None) -> list[torch.Tensor]:
    device = None if labels is None else labels.device
    return [torch.as_tensor(x, dtype=torch.long, device=device) for x in indices_tuple]


def to_pairs(indices_tuple, labels: torch.Tensor | None) -> Pairs:
    """All pairs (``None``: needs ``labels``), the given pairs, or the pairs inside triplets
    (a, p, a, n)."""
    if indices_tuple is None:
        return all_pairs(labels)
    if len(indices_tuple) == 4:
        return tuple(_as_index_vectors(indices_tuple, labels))
    if len(indices_tuple) == 3:
        a, p, n = _as_index_vectors(indices_tuple, labels)
        return a, p, a, n
    raise InputError(f"indices_tuple must have 3 (triplets) or 4 (pairs) entries, got "
                     f"{len(indices_tuple)}")


def to_triplets(indices_tuple, labels: torch.Tensor | None) -> Triplets:
    """All triplets (``None``: needs ``labels``), the given triplets, or triplets formed
    from pairs that share an anchor (as PML's ``convert_to_triplets``)."""
    if indices_tuple is None:
        return all_triplets(labels)
    if len(indices_tuple) == 3:
        return tuple(_as_index_vectors(indices_tuple, labels))
    if len(indices_tuple) == 4:
        a1, p, a2, n = _as_index_vectors(indices_tuple, labels)
        pi, ni = torch.where(a1[:, None] == a2[None, :])
        return a1[pi], p[pi], n[ni]
    raise InputError(f"indices_tuple must have 3 (triplets) or 4 (pairs) entries, got "
                     f"{len(indices_tuple)}")


def zero_loss(embeddings: torch.Tensor) -> torch.Tensor:
    """A zero that still carries a gradient path to ``embeddings`` (as PML)."""
    return (embeddings * 0).sum()


def mean_nonzero(losses: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """PML's ``AvgNonZeroReducer``: the mean of the strictly positive losses (0 if none).

    Averaging over the active terms only keeps the gradient from shrinking as more and more
    triplets meet the margin (and contribute exact zeros)."""
    active = losses[losses > 0]
    return active.mean() if len(active) else zero_loss(embeddings)


class MetricLoss(nn.Module):
    """Base class: ``loss(embeddings [N, D], labels [N], indices_tuple=None) -> scalar``.

    ``labels`` may be None when an ``indices_tuple`` is given (as in PML: the tuple alone
    says which pairs or triplets count); without either, a one-line InputError. float16 and
    bfloat16 embeddings are computed in float32; the loss comes back in the input dtype.

    After each call ``self.stats`` holds ``{"terms": how many pair/triplet terms were
    computed, "active": how many were non-zero}``: the fraction of active terms explains a
    loss that goes to zero (every triplet already meets the margin).
    """

    def __init__(self, distance) -> None:
        super().__init__()
        self.distance = distance
        self.stats: dict[str, int] = {"terms": 0, "active": 0}

    def forward(self, embeddings: torch.Tensor, labels=None, indices_tuple=None) -> torch.Tensor:
        who = type(self).__name__
        if labels is None and indices_tuple is None:
            raise InputError(f"{who}: labels are missing: pass integer labels [N] or an "
                             f"indices_tuple (e.g. from a miner)")
        embeddings, labels = check_batch(embeddings, labels, who,
                                         labels_optional=indices_tuple is not None)
        indices_tuple = check_indices(indices_tuple, len(embeddings), embeddings.device, who)
        self.stats = {"terms": 0, "active": 0}
        loss = self.compute(working_precision(embeddings), labels, indices_tuple)
        return loss.to(embeddings.dtype)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor | None,
                indices_tuple) -> torch.Tensor:
        """The loss of ``embeddings`` (float32 or float64 [N, D]) under ``labels`` int64 [N]
        (None only with an index tuple) and the checked ``indices_tuple`` (or None)."""
        raise NotImplementedError

    def _record(self, *losses: torch.Tensor) -> None:
        self.stats = {"terms": int(sum(len(x) for x in losses)),
                      "active": int(sum(int((x > 0).sum()) for x in losses))}

    @property
    def active_fraction(self) -> float:
        """Fraction of the last call's terms with a non-zero loss (nan if there were none)."""
        t = self.stats["terms"]
        return self.stats["active"] / t if t else float("nan")
