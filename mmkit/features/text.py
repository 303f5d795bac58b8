"""Text features: TF-IDF bag of words (scikit-learn)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from mmkit.data.captions import tokenize


class TfidfEncoder:
    """TF-IDF over unigrams and bigrams with Karpathy-style tokens.

    Example:
        >>> enc = TfidfEncoder().fit(["a red circle", "a blue square"])
        >>> enc.transform(["red square"]).shape[0]
        1
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2,
                 sublinear_tf: bool = True) -> None:
        self.vectorizer = TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False,
                                          ngram_range=ngram_range, min_df=min_df,
                                          sublinear_tf=sublinear_tf)

    def fit(self, texts: Sequence[str]) -> "TfidfEncoder":
        """Learn the vocabulary and IDF weights from ``texts``."""
        if len(texts) == 0:
            raise ValueError("TfidfEncoder.fit: no texts")
        self.vectorizer.set_params(min_df=min(self.vectorizer.min_df, len(texts)))
        self.vectorizer.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Dense, L2-normalised TF-IDF vectors: float32 [len(texts), vocabulary]."""
        return self.vectorizer.transform(texts).toarray().astype(np.float32)

    @property
    def vocabulary(self) -> list[str]:
        return list(self.vectorizer.get_feature_names_out())
