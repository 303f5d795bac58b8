"""Cosine similarity of a set of embeddings with itself, the score matrix of within-modality
retrieval (image->image, audio->audio, text->text) in notebooks 01-03."""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.errors import InputError


def cosine_scores(embeddings: Any, exclude_self: bool = True) -> np.ndarray:
    """float32 [N, N]: the cosine similarity of every row with every row; the diagonal is
    ``-inf`` when ``exclude_self`` (a query never retrieves itself). A zero vector (an empty
    text under bag of words, a silent clip) scores 0 against everything.

    Args:
        embeddings: float [N, D] (numpy or torch).
    """
    if type(embeddings).__module__.startswith("torch"):
        embeddings = embeddings.detach().cpu().numpy()
    x = np.asarray(embeddings, np.float32)
    if x.ndim != 2:
        raise InputError(f"embeddings must be [N, D], got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norm > 0, norm, 1)
    s = x @ x.T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    return s
