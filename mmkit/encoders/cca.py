"""Canonical correlation analysis (CCA): the first joint embedding.

CCA finds projections ``A`` and ``B`` such that ``X @ A`` and ``Y @ B`` are maximally
correlated, dimension by dimension. After projection, an image and its caption land close
together, so cosine similarity between modalities becomes meaningful.

Two solvers:

- ``"closed_form"`` (default): regularised CCA by whitening and one SVD,
  ``svd(Cxx^-1/2 Cxy Cyy^-1/2)``. Exact and fast (seconds on thousands of pairs).
- ``"sklearn"``: :class:`sklearn.cross_decomposition.CCA` (iterative NIPALS). The same
  subspace for well-separated correlations, but 10-50x slower and it may stop before
  converging on noisy components. Kept to cross-check the closed form (see the tests).

Both reduce each side with PCA first (``pca_dims``), which also regularises.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class CCA:
    """Joint space of two views by CCA.

    Args:
        n_components: size of the joint space ``k``.
        pca_dims: PCA size of each view before CCA (capped by the data).
        reg: ridge added to each view's covariance (relative to its mean variance).
        weight_power: joint dimensions are scaled by ``corr ** weight_power`` before the
            final L2 normalisation (0 = unweighted; 1 down-weights weakly correlated ones).
        solver: ``"closed_form"`` or ``"sklearn"``.

    Example:
        >>> cca = CCA(n_components=8).fit(image_feats, text_feats)   # [N, Dx], [N, Dy]
        >>> zi, zt = cca.transform_x(image_feats), cca.transform_y(text_feats)  # [N, 8] each
    """

    def __init__(self, n_components: int = 64, pca_dims: int = 256, reg: float = 1e-3,
                 weight_power: float = 1.0, solver: str = "closed_form",
                 random_state: int = 0) -> None:
        if solver not in ("closed_form", "sklearn"):
            raise ValueError(f"unknown CCA solver {solver!r}; use 'closed_form' or 'sklearn'")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.pca_dims = pca_dims
        self.reg = reg
        self.weight_power = weight_power
        self.solver = solver
        self.random_state = random_state

    def fit(self, x: np.ndarray, y: np.ndarray) -> "CCA":
        """Fit on paired rows: x float [N, Dx], y float [N, Dy] (row i of x goes with row i of y)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise ValueError(f"CCA.fit needs paired 2-D arrays, got {x.shape} and {y.shape}")
        if len(x) < 3:
            raise ValueError("CCA.fit needs at least 3 pairs")
        from sklearn.decomposition import PCA   # scikit-learn: imported when first fitted
        self.pca_x_ = PCA(min(self.pca_dims, x.shape[1], len(x) - 1),
                          random_state=self.random_state).fit(x)
        self.pca_y_ = PCA(min(self.pca_dims, y.shape[1], len(y) - 1),
                          random_state=self.random_state).fit(y)
        px, py = self.pca_x_.transform(x), self.pca_y_.transform(y)
        k = min(self.n_components, px.shape[1], py.shape[1])
        if self.solver == "closed_form":
            self.a_, self.b_, self.correlations_ = _closed_form(px, py, k, self.reg)
        else:
            self.a_, self.b_, self.correlations_ = _sklearn(px, py, k)
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays (for an .npz file; no pickles): the two PCA
        means and components, the CCA weights and correlations, and the settings."""
        return {"pca_x_mean": self.pca_x_.mean_, "pca_x_components": self.pca_x_.components_,
                "pca_y_mean": self.pca_y_.mean_, "pca_y_components": self.pca_y_.components_,
                "a": self.a_, "b": self.b_, "correlations": self.correlations_,
                "settings": np.array([self.n_components, self.pca_dims, self.reg,
                                      self.weight_power], np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "CCA":
        """The fitted CCA :meth:`to_arrays` describes (transforms equal the original's)."""
        n, pca, reg, power = arrays["settings"].tolist()
        cca = cls(int(n), int(pca), reg, power)
        cca.pca_x_ = _fitted_pca(arrays["pca_x_mean"], arrays["pca_x_components"])
        cca.pca_y_ = _fitted_pca(arrays["pca_y_mean"], arrays["pca_y_components"])
        cca.a_, cca.b_ = arrays["a"], arrays["b"]
        cca.correlations_ = arrays["correlations"]
        return cca

    def _project(self, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        z = z * weights
        return (z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)).astype(np.float32)

    @property
    def _weights(self) -> np.ndarray:
        return np.clip(self.correlations_, 1e-6, None) ** self.weight_power

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        """Project view X into the joint space: float32 [N, k], unit length."""
        return self._project(self.pca_x_.transform(np.asarray(x, np.float64)) @ self.a_,
                             self._weights)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        """Project view Y into the joint space: float32 [N, k], unit length."""
        return self._project(self.pca_y_.transform(np.asarray(y, np.float64)) @ self.b_,
                             self._weights)


def _fitted_pca(mean: np.ndarray, components: np.ndarray) -> Any:
    """A scikit-learn PCA (no whitening) in the fitted state given by its mean [D] and
    components [k, D]."""
    from sklearn.decomposition import PCA

    pca = PCA(components.shape[0])
    pca.mean_, pca.components_ = np.asarray(mean), np.asarray(components)
    pca.n_components_, pca.n_features_in_ = components.shape
    return pca


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    return (vecs / np.sqrt(np.clip(vals, 1e-12, None))) @ vecs.T


def _closed_form(x: np.ndarray, y: np.ndarray, k: int, reg: float):
    """Regularised CCA of centred views: (A [Dx, k], B [Dy, k], correlations [k])."""
    n = len(x)
    cxx = x.T @ x / (n - 1)
    cyy = y.T @ y / (n - 1)
    cxy = x.T @ y / (n - 1)
    cxx += reg * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
    cyy += reg * np.trace(cyy) / len(cyy) * np.eye(len(cyy))
    wx, wy = _inv_sqrt(cxx), _inv_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    a, b = wx @ u[:, :k], wy @ vt[:k].T
    # fix the sign of each pair so results do not depend on the LAPACK build
    signs = np.sign(a[np.abs(a).argmax(0), np.arange(k)])
    return a * signs, b * signs, s[:k]


def _sklearn(x: np.ndarray, y: np.ndarray, k: int):
    """CCA with scikit-learn's NIPALS solver, in the same (A, B, correlations) form."""
    import warnings

    from sklearn.cross_decomposition import CCA as SkCCA
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SkCCA(n_components=k, scale=False, max_iter=1000).fit(x, y)
    a, b = model.x_rotations_, model.y_rotations_
    zx, zy = x @ a, y @ b
    corr = np.array([np.corrcoef(zx[:, i], zy[:, i])[0, 1] for i in range(k)])
    return a, b, np.abs(corr)
