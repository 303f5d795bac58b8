"""faiss-cpu indexes behind the :class:`~mmkit.index.base.SearchIndex` interface.

=======  =================================  ==============================================
kind     faiss index (``index_factory``)    parameters (defaults)
=======  =================================  ==============================================
flat     ``Flat``: exact, brute force       (none)
ivf      ``IVF{nlist},Flat``                nlist (auto), nprobe=8, train_size, niter=10,
                                            seed=0
hnsw     ``HNSW{M}``                        M=32, ef_construction=40, ef_search=32
ivfpq    ``IVF{nlist},PQ{m}x{nbits}``       nlist (auto), nprobe=8, m (D/8), nbits=8,
         (+ ``,RFlat`` when refine > 0)     refine=0, train_size, niter=10, seed=0
=======  =================================  ==============================================

IVF kinds need training: :meth:`FaissIndex.train`, or automatically on the first
:meth:`~mmkit.index.base.SearchIndex.add` of at least ``nlist`` vectors (``2**nbits`` for
PQ). ``nlist=None`` picks ``min(4 sqrt(n), n / 39)`` for n training vectors; training
uses at most ``train_size`` of them (default ``50 * nlist``, and ``40 * 2**nbits`` or more
for PQ), drawn with ``seed``.
``refine=r`` re-ranks the ``r * k`` best PQ hits with the exact vectors (IndexRefineFlat:
much better recall, but it stores the full vectors too).

faiss labels are the positions 0..N-1; :class:`~mmkit.index.base.SearchIndex` maps them
to your ids. Approximate results are not tie-deterministic across builds (HNSW builds in
parallel); a saved and reloaded index returns the same results as the original.

faiss itself is imported when the first faiss index is made or loaded (:func:`_faiss`), so
importing this module (and ``mmkit.index``) stays fast.
"""
from __future__ import annotations

import functools
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmkit.index.base import SearchIndex, SearchIndexError, as_matrix, unit_rows
from mmkit.validate import integer

if TYPE_CHECKING:
    import faiss


@functools.cache
def _faiss():
    """The faiss module, imported on first use (it takes a while to load)."""
    import faiss

    return faiss


def _faiss_metric(metric: str) -> int:
    """faiss's metric type of an index ``metric`` ("cosine" is inner product on unit rows)."""
    faiss = _faiss()
    return {"ip": faiss.METRIC_INNER_PRODUCT, "cosine": faiss.METRIC_INNER_PRODUCT,
            "l2": faiss.METRIC_L2}[metric]

_TRAIN = {"nlist": None, "nprobe": 8, "train_size": None, "niter": 10, "seed": 0}
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    "ivf": dict(_TRAIN),
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 32},
    "ivfpq": {**_TRAIN, "m": None, "nbits": 8, "refine": 0},
}
_KNOB = {"ivf": "nprobe", "ivfpq": "nprobe", "hnsw": "ef_search"}
MAX_EF_SEARCH = 4096


def _tensor(x: Any) -> torch.Tensor:
    """A faiss result as a tensor, whether faiss returned numpy or (patched by
    ``faiss.contrib.torch_utils``) torch."""
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(x)


def _check_int(params: dict[str, Any], name: str, low: int) -> None:
    if params[name] is not None:
        params[name] = integer(params[name], name, low=low, error=SearchIndexError)


class FaissIndex(SearchIndex):
    """A faiss Flat / IVF / HNSW / IVF-PQ index; see the module docstring for ``params``."""

    def __init__(self, kind: str, dim: int, metric: str = "ip", **params: Any) -> None:
        super().__init__(dim, metric)
        if kind not in DEFAULTS:
            raise SearchIndexError(f"unknown faiss index kind {kind!r}; choose one of "
                                   f"{', '.join(DEFAULTS)}")
        unknown = set(params) - set(DEFAULTS[kind])
        if unknown:
            allowed = ", ".join(DEFAULTS[kind]) or "none"
            raise SearchIndexError(f"unknown parameter(s) for a {kind} index: "
                                   f"{', '.join(sorted(unknown))} (allowed: {allowed})")
        self.kind = kind
        self.search_knob = _KNOB.get(kind)
        self.params: dict[str, Any] = {**DEFAULTS[kind], **params}
        for name, low in [("nlist", 1), ("nprobe", 1), ("train_size", 1), ("niter", 1),
                          ("M", 2), ("ef_construction", 1), ("ef_search", 1), ("m", 1),
                          ("nbits", 1), ("refine", 0)]:
            if name in self.params:
                _check_int(self.params, name, low)
        if kind == "ivfpq":
            if self.params["m"] is None:   # ~8 dims per sub-quantizer, m must divide dim
                self.params["m"] = next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)
            if dim % self.params["m"]:
                raise SearchIndexError(f"ivfpq: m={self.params['m']} must divide dim={dim}")
        self._index: faiss.Index | None = None
        if kind in ("flat", "hnsw"):
            self._create()

    # --- the faiss object
    @property
    def faiss_index(self) -> faiss.Index | None:
        """The underlying faiss index (None for an IVF kind before training)."""
        return self._index

    def _create(self) -> None:
        p, d = self.params, self.dim
        spec = {"flat": "Flat", "hnsw": f"HNSW{p.get('M')}",
                "ivf": f"IVF{p.get('nlist')},Flat",
                "ivfpq": f"IVF{p.get('nlist')},PQ{p.get('m')}x{p.get('nbits')}"}[self.kind]
        if self.kind == "ivfpq" and p["refine"]:
            spec += ",RFlat"
        try:
            index = _faiss().index_factory(d, spec, _faiss_metric(self.metric))
        except RuntimeError as e:  # e.g. nbits too large: faiss's message, first line only
            raise SearchIndexError(f"faiss cannot build {spec!r}: "
                                   f"{str(e).splitlines()[0]}") from None
        if self.kind == "hnsw":
            index.hnsw.efConstruction = p["ef_construction"]
        ivf = _faiss().try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.niter, ivf.cp.seed = p["niter"], p["seed"]
        if self.kind == "ivfpq":
            # slow, and only needed for polysemous search
            _faiss().downcast_index(ivf).do_polysemous_training = False
        self._index = index
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self._index is None:
            return
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.params["ef_search"]
        ivf = _faiss().try_extract_index_ivf(self._index)
        if ivf is not None:
            ivf.nprobe = min(self.params["nprobe"], ivf.nlist)
        if self.kind == "ivfpq" and self.params["refine"]:
            self._index.k_factor = float(self.params["refine"])

    # --- search-time knob
    @property
    def search_params(self) -> dict[str, int]:
        names = {"ivf": ["nprobe"], "ivfpq": ["nprobe"], "hnsw": ["ef_search"]}.get(self.kind, [])
        return {name: self.params[name] for name in names}

    def set_search_params(self, **params: int) -> None:
        unknown = set(params) - set(self.search_params)
        if unknown:
            raise SearchIndexError(f"{self.kind} index has no search parameter(s) "
                                   f"{', '.join(sorted(unknown))} (it has: "
                                   f"{', '.join(self.search_params) or 'none'})")
        for name, value in params.items():
            low, high = self._knob_bounds(name)
            self.params[name] = integer(value, name, low=low, high=high, error=SearchIndexError)
        self._apply_search_params()

    def _knob_bounds(self, name: str) -> tuple[int, int]:
        if name == "nprobe":
            ivf = _faiss().try_extract_index_ivf(self._index) if self._index is not None else None
            return 1, (ivf.nlist if ivf is not None else 1 << 20)
        return 1, MAX_EF_SEARCH

    def knob_range(self) -> tuple[int, int]:
        if self.search_knob is None:
            return super().knob_range()
        return self._knob_bounds(self.search_knob)

    # --- training
    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    def _min_train(self) -> int:
        nlist = self.params.get("nlist") or 1
        return max(nlist, 2 ** self.params["nbits"]) if self.kind == "ivfpq" else nlist

    def train(self, vectors: Any) -> None:
        """Learn the IVF centroids (and PQ codebooks) from [N, D] sample vectors."""
        x = as_matrix(vectors, self.dim, "training vectors")
        if self.kind not in ("ivf", "ivfpq"):
            return
        if self.metric == "cosine":
            x = unit_rows(x, "training vectors")
        if len(self):
            raise SearchIndexError(f"the {self.kind} index already holds vectors; "
                                   "train it before adding")
        if self.params["nlist"] is None:
            self.params["nlist"] = max(1, min(int(4 * math.sqrt(x.shape[0])), x.shape[0] // 39))
        if x.shape[0] < self._min_train():
            raise SearchIndexError(f"the {self.kind} index needs at least {self._min_train()} "
                                   f"training vectors, got {x.shape[0]}")
        size = self.params["train_size"] or max(50 * self.params["nlist"], 40 * self._min_train())
        if x.shape[0] > size:  # a random sample keeps k-means fast
            gen = torch.Generator().manual_seed(self.params["seed"])
            x = x[torch.randperm(x.shape[0], generator=gen)[:size].sort().values]
        self._create()
        try:
            self._index.train(np.ascontiguousarray(x.cpu().numpy()))
        except RuntimeError as e:  # faiss raises RuntimeError with a long C++ trace
            raise SearchIndexError(f"faiss could not train the {self.kind} index: "
                                   f"{str(e).splitlines()[0]}") from None

    def _prepare_add(self, x: torch.Tensor) -> None:
        if self.is_trained:
            return
        if x.shape[0] < self._min_train():
            raise SearchIndexError(f"the {self.kind} index is not trained: call train() with at "
                                   f"least {self._min_train()} vectors, or add that many at once")
        self.train(x)

    # --- add and search
    def _add(self, x: torch.Tensor) -> None:
        self._index.add(np.ascontiguousarray(x.cpu().numpy()))

    def _search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        scores, labels = self._index.search(np.ascontiguousarray(q.cpu().numpy()), k)
        return _tensor(scores), _tensor(labels)

    def stored_vectors(self) -> torch.Tensor | None:
        """[N, D] copy of the exact stored vectors (unit length for cosine), if kept.

        Flat, HNSW, IVF-Flat and refined IVF-PQ keep them; plain IVF-PQ keeps codes only
        (returns None).
        """
        if self._index is None or len(self) == 0:
            return torch.empty(0, self.dim)
        index = self._index
        if self.kind == "ivfpq":
            if not self.params["refine"]:
                return None
            index = _faiss().downcast_index(index.refine_index)
        if self.kind == "ivf":
            index.make_direct_map()  # id -> (list, offset), needed for reconstruct
            out = index.reconstruct_n(0, index.ntotal)
            index.set_direct_map_type(_faiss().DirectMap.NoMap)
        else:
            out = index.reconstruct_n(0, index.ntotal)
        # faiss.contrib.torch_utils (imported by pytorch-metric-learning, for one) patches
        # faiss so that reconstruct_n returns a torch tensor: accept both
        return out if isinstance(out, torch.Tensor) else torch.from_numpy(out)

    # --- saving
    def _state(self) -> dict[str, Any]:
        payload = None if self._index is None else _faiss().serialize_index(self._index)
        return {"params": dict(self.params),
                "faiss": None if payload is None else torch.from_numpy(payload),
                "crc32": None if payload is None else zlib.crc32(payload)}

    @classmethod
    def _from_state(cls, state: dict[str, Any], path: Path, **options: Any) -> FaissIndex:
        if options:
            raise SearchIndexError(f"unknown load option(s) for a {state['kind']} index: "
                                   f"{', '.join(sorted(options))}")
        index = cls(state["kind"], state["dim"], state["metric"], **state["params"])
        payload = state.get("faiss")
        n = state["ids"].shape[0]
        if payload is None:
            if n or index.kind in ("flat", "hnsw"):
                raise SearchIndexError(f"{path} is a corrupt mmkit index (no faiss data)")
            index._index = None
            return index
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 \
                or payload.ndim != 1:
            raise SearchIndexError(f"{path} is a corrupt mmkit index (bad faiss data)")
        data = payload.numpy()
        if zlib.crc32(data) != state.get("crc32"):
            raise SearchIndexError(f"{path} is a corrupt mmkit index (checksum mismatch)")
        try:
            faiss_index = _faiss().deserialize_index(data)
        except RuntimeError:
            raise SearchIndexError(f"{path} is a corrupt mmkit index "
                                   "(faiss cannot read it)") from None
        if faiss_index.d != index.dim or faiss_index.ntotal != n \
                or faiss_index.metric_type != _faiss_metric(index.metric):
            raise SearchIndexError(f"{path} is a corrupt mmkit index (faiss data does not match "
                                   f"the header)")
        index._index = faiss_index
        index._apply_search_params()
        return index
