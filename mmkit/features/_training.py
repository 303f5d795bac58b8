"""Small pieces shared by the trainers of :mod:`mmkit.features` (word2vec, the recurrent
sentence encoders, MiniLM's batching, OCR): the device, a progress bar and the check that a
config's vocabulary is the world's. The thread count, seeding and loss windows are
:mod:`mmkit.training`'s."""
from __future__ import annotations

from collections.abc import Iterable

from mmkit._setup import pick_device
from mmkit.errors import InputError
from mmkit.features.text import WordTokenizer
from mmkit.training import progress_bar

#: ``WordTokenizer.world().vocab_size`` (checked when training, see :func:`check_vocab`)
WORLD_VOCAB_SIZE = 277


def device() -> str:
    """The device trainers use (:func:`mmkit._setup.pick_device`)."""
    return pick_device()


def bar(iterable: Iterable, progress: bool, **kwargs):
    """``iterable`` with a progress bar when ``progress`` (:func:`mmkit.training.progress_bar`:
    left off the screen when done)."""
    return progress_bar(iterable, progress=progress, **kwargs)


def check_vocab(config: dict) -> WordTokenizer:
    """The world tokenizer, after checking that ``config["vocab_size"]`` is its size."""
    tok = WordTokenizer.world()
    if tok.vocab_size != config["vocab_size"]:
        raise InputError(f"the world's vocabulary has {tok.vocab_size} entries but the config "
                         f"says {config['vocab_size']}: retrain with vocab_size="
                         f"{tok.vocab_size}")
    return tok
