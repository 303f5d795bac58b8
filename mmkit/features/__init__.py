"""Single-modality features and encoders (notebooks 01-03).

Images:

- ``visual``: handcrafted descriptors (colour histograms, HOG, LBP, ...);
- ``image_encoder``: the interface every CNN encoder follows (``ImageEncoder``), image
  preprocessing (``images_to_tensor``, ``imagenet_tensor``) and ``embed_images``;
- ``visual_cnn``: CNN encoders trained on the world (``SmallCNN`` with attention modules,
  ``NarrowResNet18``) and their training;
- ``pretrained``: the frozen ImageNet EfficientNet-Lite0 (``PretrainedEncoder``);
- ``explain``: saliency maps, Grad-CAM and similarity Grad-CAM.

Text:

- ``text``: tokenisation, bag of words, TF-IDF;
- ``word2vec``: skip-gram word vectors trained on world captions;
- ``sentence_encoders``: GRU/LSTM sentence encoders trained contrastively on captions;
- ``minilm``: the pretrained MiniLM sentence encoder;
- ``ocr``: reading the word on a sign (PP-OCR).

(``text_encoders`` is the old import path of ``word2vec``, ``sentence_encoders``, ``minilm``
and ``ocr`` together; these are not the joint-space models of :mod:`mmkit.encoders`.)

Sound:

- ``audio`` / ``audio_cnn``: librosa features (log-mel, MFCC, chroma, pitch, timbre) and a
  log-mel CNN for sound clips and spoken captions.

And ``cache``: feature caches keyed by their inputs and configuration, written atomically.
"""
