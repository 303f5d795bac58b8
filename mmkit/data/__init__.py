"""Data: the embedded multimodal world and loaders for real datasets (no model code here)."""
from mmkit.data.world import DIRECTIONS, SPLITS, World, WorldConfig

__all__ = ["World", "WorldConfig", "SPLITS", "DIRECTIONS"]
