"""Search your own photos, at any scale: embed a folder of images (files keyed by SHA-256:
incremental, resumable, verified; locally or on Ray), build sharded indexes chosen and tuned
autofaiss-style, search them by text, image or sound and by composed queries, find
near-duplicates. ``mmkit index build|update``, ``mmkit search`` and ``mmkit duplicates`` are
the command-line side.

>>> from mmkit.scale import Term, build_folder_index, search_folder
>>> manifest = build_folder_index("photos/", "photos.index")      # method "pretrained"
>>> search_folder("photos.index", text="a cat", k=5, why=True)["results"][0]
{'id': 12, 'path': '.../chelsea.png', 'score': 0.77, 'why': {...}}
>>> search_folder("photos.index", terms=[Term("text", "a cat"), Term("text", "grass", -0.5)])

Ray is imported only when the Ray engine runs (``import mmkit.scale`` does not import it).
"""
from __future__ import annotations

from mmkit.scale.auto import IndexChoice, bytes_per_vector, choose_index
from mmkit.scale.build import build_folder_index
from mmkit.scale.duplicates import DEFAULT_THRESHOLD, duplicate_groups, index_duplicates
from mmkit.scale.files import list_images, load_image, load_images
from mmkit.scale.search import FolderIndex, Term, load_method, search_folder, search_index
from mmkit.scale.shards import ShardedIndex, merge_topk, shard_bounds, train_quantizer

__all__ = ["IndexChoice", "bytes_per_vector", "choose_index", "FolderIndex", "Term",
           "build_folder_index", "search_folder", "search_index", "load_method",
           "index_duplicates", "duplicate_groups", "DEFAULT_THRESHOLD",
           "list_images", "load_image", "load_images",
           "ShardedIndex", "merge_topk", "shard_bounds", "train_quantizer"]
