"""Data: the embedded multimodal world and loaders for real datasets (no model code here)."""
from mmkit.data.collection import Collection
from mmkit.data.dataset import Repair, RetrievalDataset
from mmkit.data.directions import DEMO_DIRECTIONS, DIRECTIONS, Direction, get_direction
from mmkit.data.world import SPLITS, World, WorldConfig

__all__ = ["World", "WorldConfig", "SPLITS", "DIRECTIONS", "DEMO_DIRECTIONS", "Direction",
           "get_direction", "RetrievalDataset", "Repair", "Collection"]
