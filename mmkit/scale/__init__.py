"""Search at scale: embed a folder of images in resumable partitions (locally or on Ray),
build sharded indexes chosen and tuned autofaiss-style, and search them by text, image or
sound. ``mmkit index build`` and ``mmkit search`` are the command-line side.

>>> from mmkit.scale import build_folder_index, search_folder
>>> manifest = build_folder_index("photos/", "photos.index", kind="auto", engine="ray", workers=2)
>>> search_folder("photos.index", text="a red circle", k=5)["results"][0]
{'path': '.../000123.png', 'score': 0.81}

Ray is imported only when the Ray engine runs (``import mmkit.scale`` does not import it).
"""
from __future__ import annotations

from mmkit.scale.auto import IndexChoice, bytes_per_vector, choose_index
from mmkit.scale.build import build_folder_index
from mmkit.scale.files import list_images, load_image, load_images
from mmkit.scale.search import FolderIndex, search_folder
from mmkit.scale.shards import ShardedIndex, merge_topk, shard_bounds, train_quantizer

__all__ = ["IndexChoice", "bytes_per_vector", "choose_index", "FolderIndex",
           "build_folder_index", "search_folder", "list_images", "load_image", "load_images",
           "ShardedIndex", "merge_topk", "shard_bounds", "train_quantizer"]
