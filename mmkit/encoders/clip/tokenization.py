"""CLIP's kind of tokenizer, trained offline on world captions with the ``tokenizers`` library.

- :func:`train_caption_tokenizer`: captions -> ``CLIPTokenizer`` (bos ``<|startoftext|>`` = 0,
  eos ``<|endoftext|>`` = 1, pad ``<|pad|>`` = 2); deterministic; every byte and its word-final
  form is in the vocabulary, so no text ever falls back to the unknown token;
- :func:`tokenizer_to_json` / :func:`tokenizer_from_json`: the compact JSON (tokens in id order,
  merges) that a ``clip_world`` checkpoint stores in its ``tokenizer_json`` buffer.

transformers is imported when a function needs it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from mmkit.errors import InputError

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "SUFFIX", "train_caption_tokenizer",
           "tokenizer_to_json", "tokenizer_from_json"]

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<|pad|>"
#: the special tokens, in id order (bos 0, eos 1, pad 2)
SPECIALS = (BOS, EOS, PAD)
#: CLIP's end-of-word suffix: ``"red</w>"`` is the word "red", ``"red"`` a word's beginning
SUFFIX = "</w>"
#: the smallest vocabulary a trained tokenizer has: the specials, the 256 byte symbols and
#: their 256 word-final forms
MIN_VOCAB = len(SPECIALS) + 2 * 256


def _clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int):
    """A transformers ``CLIPTokenizer`` over ``vocab`` / ``merges``; its size and special ids
    checked (the offline-empty-tokenizer trap)."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m) for m in merges], pad_token=PAD,
                        model_max_length=int(max_length))
    if len(tok) != len(vocab) or tok.vocab_size != len(vocab):
        raise InputError(f"CLIP tokenizer came back with {len(tok)} tokens, expected "
                         f"{len(vocab)} (an empty or broken vocabulary)")
    ids = (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    if ids != (0, 1, 2):
        raise InputError(f"CLIP tokenizer: bos/eos/pad ids are {ids}, expected (0, 1, 2)")
    return tok


def train_caption_tokenizer(captions: Sequence[str], vocab_size: int = 600,
                            max_length: int = 48):
    """Train CLIP's kind of tokenizer on ``captions`` with the ``tokenizers`` library, offline.

    CLIP's own normaliser (NFC, whitespace squashed, lower case) and pre-tokeniser (its word
    regex, then byte-level) are taken from transformers' ``CLIPTokenizer``; a byte-pair
    ``BpeTrainer`` learns merges until its vocabulary holds ``vocab_size`` entries (the three
    specials, the 256 byte symbols, the word-final symbols that occur, the merged pieces; the
    world's closed vocabulary saturates near 940). The final vocabulary is numbered
    canonically: specials (0-2), the 256 bytes, ALL 256 word-final bytes (``"q</w>"``, as in
    CLIP's vocabulary: any text, even with letters the world never uses, is tokenised without
    the unknown token, which is CLIP's eos and would move the pooling position), then the
    merge products in merge order. So ``len(tokenizer) >= vocab_size``.

    Deterministic: the same captions and ``vocab_size`` give the same vocabulary, ids and
    merges (the trainer's merges are reproducible; its own ids of the word-final symbols
    follow hash-map order and are therefore not used).

    Returns:
        a ``transformers.CLIPTokenizer`` with bos ``<|startoftext|>`` = 0, eos
        ``<|endoftext|>`` = 1, pad ``<|pad|>`` = 2, ``model_max_length = max_length``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = [str(c) for c in captions]
    if not texts:
        raise InputError("train_caption_tokenizer: no captions")
    if int(vocab_size) < len(SPECIALS) + 256:
        raise InputError(f"train_caption_tokenizer: vocab_size must be at least "
                         f"{len(SPECIALS) + 256} (specials + bytes), got {vocab_size}")
    template = _clip_tokenizer({s: i for i, s in enumerate(SPECIALS)}, [], max_length)
    backend = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix=SUFFIX,
                                   continuing_subword_prefix=""))
    backend.normalizer = template.backend_tokenizer.normalizer
    backend.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=list(SPECIALS),
                                  initial_alphabet=alphabet, end_of_word_suffix=SUFFIX,
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # canonical ids: the trainer numbers the word-final symbols in hash-map order, which
    # changes from run to run (its merges do not); renumber: specials, bytes, word-final
    # bytes, then each merge's product in merge order
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for piece in [*alphabet, *(ch + SUFFIX for ch in alphabet), *(a + b for a, b in merges)]:
        vocab.setdefault(piece, len(vocab))
    lost = sorted(set(model["vocab"]) - set(vocab))
    if lost:
        raise InputError(f"train_caption_tokenizer: {len(lost)} trained tokens are neither "
                         f"bytes nor merge products (first: {lost[0]!r})")
    return _clip_tokenizer(vocab, merges, max_length)


def tokenizer_to_json(tokenizer) -> str:
    """The tokenizer as compact JSON: ``{"tokens": [...in id order], "merges": [[a, b], ...],
    "max_length": L}`` (what the checkpoint stores)."""
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise InputError("tokenizer_to_json: the vocabulary ids are not 0..V-1")
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m.split(" ") if isinstance(m, str) else list(m) for m in merges]
    return json.dumps({"tokens": tokens, "merges": merges,
                       "max_length": int(tokenizer.model_max_length)},
                      ensure_ascii=False, separators=(",", ":"))


def tokenizer_from_json(text: str):
    """The ``CLIPTokenizer`` of :func:`tokenizer_to_json`'s output (sizes checked)."""
    try:
        data = json.loads(text)
        tokens, merges, max_length = data["tokens"], data["merges"], data["max_length"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError("the stored CLIP tokenizer is not readable JSON of tokens and "
                         "merges") from None
    return _clip_tokenizer({t: i for i, t in enumerate(tokens)}, merges, max_length)
