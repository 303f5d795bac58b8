"""Old import path of :mod:`mmkit.encoders.metric_learning` (re-exports only).

"Metric" alone also names evaluation metrics (:mod:`mmkit.metrics`) and an index's
similarity (:data:`mmkit.index.SIMILARITIES`); metric *learning* lives in
:mod:`mmkit.encoders.metric_learning`, which also registers the checkpoints
``metric_world_cnn`` and ``metric_digits_cnn``. ``from mmkit.encoders.metric import X``
keeps working for every public name.
"""
from __future__ import annotations

from mmkit.encoders.metric_learning import (CHECKPOINTS, LOSSES, MINERS,  # re-export
                                            cosine_similarity, digits_images,
                                            few_shot_accuracy, m_per_class_batches, make_loss,
                                            make_miner, pretrained_features, retrieval_scores,
                                            seen_classes_mask, similarity_scores, train_metric)

__all__ = ["CHECKPOINTS", "LOSSES", "MINERS", "cosine_similarity", "digits_images",
           "few_shot_accuracy", "m_per_class_batches", "make_loss", "make_miner",
           "pretrained_features", "retrieval_scores", "seen_classes_mask", "similarity_scores",
           "train_metric"]
