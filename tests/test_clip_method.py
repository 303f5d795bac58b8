"""``--method clip --model PATH``: a tiny random CLIP saved with ``save_pretrained`` (its own
byte-level BPE tokenizer written here), loaded back, checked against transformers' own forward
pass, run through the command line on a Flickr8K fixture; offline without weights and an
empty tokenizer end in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_datasets_fixtures import build_flickr8k

from mmkit.data import World
from mmkit.errors import InputError

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"), ("r", "e")]


def save_tiny_clip(folder, seed: int = 0):
    """A random CLIP (hidden 32, 2 layers, 32 px images, 8 px patches) with a byte-level BPE
    vocabulary (256 bytes, their word-final forms, a few merges, the two specials)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer)

    vocab = {}
    for c in ByteLevel.alphabet():
        vocab.setdefault(c, len(vocab))
    for c in ByteLevel.alphabet():
        vocab.setdefault(c + "</w>", len(vocab))
    for a, b in MERGES:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=MERGES)
    assert len(tokenizer) == len(vocab)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_embeddings_match_transformers_forward(tiny):
    from transformers import CLIPModel, CLIPProcessor

    from mmkit.methods import get_method

    method = get_method("clip", model=str(tiny), progress=False, device="cpu").fit(None, [])
    texts = ["the red circle", "a green striped square on the left", "in"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    t, v = method.embed_texts(texts), method.embed_images(pixels, partner="text")
    assert t.shape == (3, 16) and v.shape == (3, 16) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    model, proc = CLIPModel.from_pretrained(tiny).eval(), CLIPProcessor.from_pretrained(tiny)
    with torch.no_grad():
        out = model(**proc(text=texts, images=list(pixels), padding=True, return_tensors="pt"))
    assert np.allclose(t, out.text_embeds.numpy(), atol=1e-5)
    assert np.allclose(v, out.image_embeds.numpy(), atol=1e-5)
    assert method.input_size == 32


def test_offline_without_weights_is_one_line(tmp_path):
    from mmkit.methods.clip import load_clip

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    for name, words in [("openai/clip-vit-base-patch32", ["huggingface-cli download",
                                                          "--local-dir", "HF_HUB_OFFLINE"]),
                        (str(tmp_path / "nope"), ["no such folder", "huggingface-cli"]),
                        (str(tmp_path), ["config.json", "not found"])]:
        with pytest.raises(InputError) as info:
            load_clip(name)
        assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), info.value


def test_an_empty_tokenizer_is_refused(tmp_path, tiny):
    import shutil

    from transformers import CLIPTokenizer

    from mmkit.methods.clip import load_clip

    folder = tmp_path / "empty"
    shutil.copytree(tiny, folder)
    for f in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        (folder / f).unlink(missing_ok=True)
    CLIPTokenizer().save_pretrained(folder)     # transformers 5 builds a 3-token tokenizer
    with pytest.raises(InputError, match="empty vocabulary"):
        load_clip(str(folder))


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_on_a_flickr8k_fixture(tmp_path, tiny):
    root = build_flickr8k(tmp_path / "f8k", World(n=30, seed=1))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "mmkit", "demo", "--dataset", "flickr8k",
                           "--root", str(root), "--method", "clip", "--model", str(tiny),
                           "--json", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["method"] == "clip" and report["directions"] == ["text->image", "image->text"]
    scores = np.load(tmp_path / "o" / "scores.npz")
    s = scores["text->image/scores"]
    gids, qids = scores["text->image/gallery_ids"], scores["text->image/query_ids"]
    # independent: captions of the test images in order, 5 each; a hit = the caption's image
    pos = (qids[:, None] // 5) == gids[None, :]
    top1 = s.argmax(1)
    assert report["results"]["text->image"]["R@1"] == pytest.approx(pos[np.arange(len(s)), top1].mean())
    proc = subprocess.run([sys.executable, "-m", "mmkit", "demo", "--dataset", "flickr8k",
                           "--root", str(root), "--method", "clip", "--model",
                           str(tmp_path / "missing"), "-q", "--out", str(tmp_path / "o2")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no such folder" in proc.stderr
