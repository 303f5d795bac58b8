"""Joint-embedding encoders: map two modalities into one space where cosine means relevance."""
from mmkit.encoders.cca import CCA

__all__ = ["CCA"]
