"""Single-modality features and encoders (notebooks 01-03).

- ``visual`` / ``visual_cnn``: handcrafted descriptors; CNN encoders trained on the world, the
  pretrained EfficientNet-Lite0 backbone, attention modules, saliency and similarity Grad-CAM;
- ``text`` / ``text_encoders``: tokenisation, bag of words, TF-IDF; word2vec, GRU/LSTM sentence
  encoders, the pretrained MiniLM sentence encoder, OCR of sign words;
- ``audio`` / ``audio_cnn``: librosa features (log-mel, MFCC, chroma, pitch, timbre) and a
  log-mel CNN for sound clips and spoken captions;
- ``cache``: feature caches keyed by their inputs and configuration, written atomically.
"""
