"""How far apart are two modalities in a shared space? The modality gap, measured two ways.

- :func:`centroid_gap`: the distance between the modalities' mean embeddings (Liang et al.
  2022, "Mind the gap": contrastive training leaves image and text embeddings in two separate
  cones of the sphere, whatever their retrieval quality).
- :func:`modality_probe`: the accuracy of a linear classifier (scikit-learn's
  ``LogisticRegression``) at telling the modalities apart, trained on one half of the
  embeddings and scored on the other half. 0.5 = indistinguishable (chance with balanced
  classes), 1.0 = linearly separable.
"""
from __future__ import annotations

import numpy as np

from mmkit.errors import InputError


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise InputError(f"modality embeddings must be [N, D] and [M, D] with N, M >= 1, got "
                         f"{a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("modality embeddings contain NaN or infinite values")
    return a, b


def centroid_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between the mean rows of ``a`` float [N, D] and ``b`` float [M, D]
    (on L2-normalised embeddings it lies in [0, 2])."""
    a, b = _pair(a, b)
    return float(np.linalg.norm(a.mean(0) - b.mean(0)))


def modality_probe(a: np.ndarray, b: np.ndarray, seed: int = 0, test_fraction: float = 0.5,
                   C: float = 1.0) -> float:
    """Held-out accuracy of a linear probe telling rows of ``a`` [N, D] from rows of ``b``
    [M, D].

    The two sets are first subsampled to the same size (so that chance is exactly 0.5), then
    split (stratified, ``test_fraction`` held out, seeded); a ``LogisticRegression(C=C)`` on
    standardised inputs is fitted on the rest.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _pair(a, b)
    if min(len(a), len(b)) < 4:
        raise InputError(f"modality_probe needs at least 4 rows per modality, got {len(a)} "
                         f"and {len(b)}")
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    a = a[np.sort(rng.choice(len(a), n, replace=False))]
    b = b[np.sort(rng.choice(len(b), n, replace=False))]
    x = np.concatenate([a, b])
    y = np.repeat([0, 1], n)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    clf.fit(xtr, ytr)
    return float(clf.score(xte, yte))
