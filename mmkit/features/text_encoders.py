"""Old import path of the learned and pretrained text encoders and of OCR (re-exports only).

Each concept now has its own module, the documented home of its names:

- :mod:`mmkit.features.word2vec`: skip-gram word vectors (``word2vec_world``), nearest words,
  synonym groups and how often synonyms are nearest neighbours;
- :mod:`mmkit.features.sentence_encoders`: the GRU/LSTM sentence encoders trained with
  InfoNCE (``gru_text``, ``lstm_text``);
- :mod:`mmkit.features.minilm`: the pretrained all-MiniLM-L6-v2 sentence encoder;
- :mod:`mmkit.features.ocr`: reading the word on a sign with PP-OCR, with its cache.

``from mmkit.features.text_encoders import X`` keeps working for every name below.
"""
from __future__ import annotations

from mmkit.checkpoints import CheckpointSpec
from mmkit.features import sentence_encoders as _sentence_encoders
from mmkit.features import word2vec as _word2vec
from mmkit.features.minilm import (MINILM_MAX_TOKENS, MINILM_VOCAB,  # re-export
                                   MiniLMEncoder, load_minilm_tokenizer, mean_pool,
                                   minilm_folder)
from mmkit.features.ocr import (OcrBox, OcrSettings, image_key, ocr_cache_path,  # re-export
                                ocr_image, read_sign_words, sign_text, time_ocr, word_query)
from mmkit.features.sentence_encoders import (GRUTextEncoder, LSTMTextEncoder,  # re-export
                                              RecurrentTextEncoder, info_nce, same_image_map)
from mmkit.features.word2vec import (SkipGram, heldout_loss, mean_word_vectors,  # re-export
                                     nearest_words, negative_table, skipgram_pairs,
                                     synonym_groups, synonym_neighbour_rate)

#: the checkpoints of :mod:`~mmkit.features.word2vec` and
#: :mod:`~mmkit.features.sentence_encoders` together (those modules register them)
CHECKPOINTS: dict[str, CheckpointSpec] = {**_word2vec.CHECKPOINTS,
                                          **_sentence_encoders.CHECKPOINTS}

__all__ = ["SkipGram", "skipgram_pairs", "negative_table", "heldout_loss", "nearest_words",
           "synonym_groups", "synonym_neighbour_rate", "mean_word_vectors",
           "RecurrentTextEncoder", "GRUTextEncoder", "LSTMTextEncoder", "info_nce",
           "same_image_map", "MiniLMEncoder", "mean_pool", "minilm_folder",
           "load_minilm_tokenizer", "MINILM_VOCAB", "MINILM_MAX_TOKENS", "OcrSettings",
           "OcrBox", "ocr_image", "sign_text", "read_sign_words", "ocr_cache_path",
           "image_key", "time_ocr", "word_query", "CHECKPOINTS"]
