"""mmkit.encoders.hf_clip: transformers' CLIPModel, small, with a BPE tokenizer trained on world
captions. Checked against the tokenizer's regex words, a hand-made eos pooling, transformers'
own forward pass, a brute-force R@1, and save/read and save_pretrained/from_pretrained round
trips."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmkit.data import World  # noqa: E402
from mmkit.errors import InputError  # noqa: E402
from mmkit.encoders import hf_clip as H  # noqa: E402

TINY = {"image_size": 32, "patch_size": 8, "hidden": 32, "layers": 1, "heads": 2,
        "projection_dim": 16}


@pytest.fixture(scope="module")
def world():
    return World(n=60, seed=1500)


@pytest.fixture(scope="module")
def tok(world):
    return H.train_caption_tokenizer(world.captions, vocab_size=400, max_length=48)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    config = H.small_clip_config(tok, **TINY)
    return H.ClipStyle(H.build_clip(config), tok, tokenizer_bytes=32768).eval()


def words(text: str) -> list[str]:
    """CLIP's words, naively: lower case, letter runs, digits, punctuation runs."""
    return re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower())


# =============================================================================== tokenizer
def test_tokenizer_specials_size_and_pieces(tok, world):
    vocab = tok.get_vocab()
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == H.SPECIALS
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    assert sorted(vocab.values()) == list(range(len(tok))) and len(tok) > 400
    from tokenizers.pre_tokenizers import ByteLevel

    for ch in ByteLevel.alphabet():              # every byte, inner and word-final, as CLIP
        assert ch in vocab and ch + "</w>" in vocab
    for caption in world.captions[:50]:
        ids = tok(caption)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 1 and 1 not in ids[1:-1] and 2 not in ids
        pieces = tok.convert_ids_to_tokens(ids[1:-1])
        assert "".join(pieces).replace("</w>", " ").split() == words(caption)
    # letters the world never uses still avoid the unknown token (= eos in CLIP)
    ids = tok("Zebra QUOKKA 42 jumps!")["input_ids"]
    assert 1 not in ids[1:-1]
    assert "".join(tok.convert_ids_to_tokens(ids[1:-1])).replace("</w>", " ").split() == \
        words("Zebra QUOKKA 42 jumps!")


def test_tokenizer_is_deterministic_and_round_trips_through_json(tok, world):
    again = H.train_caption_tokenizer(list(world.captions), vocab_size=400, max_length=48)
    assert again.get_vocab() == tok.get_vocab()
    assert H.tokenizer_to_json(again) == H.tokenizer_to_json(tok)
    back = H.tokenizer_from_json(H.tokenizer_to_json(tok))
    batch = world.captions[:40] + ["an unseen zebra, purple & tiny"]
    assert back(batch, padding=True)["input_ids"] == tok(batch, padding=True)["input_ids"]
    other = H.train_caption_tokenizer(world.captions[:100], vocab_size=400, max_length=48)
    assert other.get_vocab() != tok.get_vocab()          # other captions, other merges


def test_tokenizer_bad_input_is_one_line():
    for call, word in [(lambda: H.train_caption_tokenizer([]), "no captions"),
                       (lambda: H.train_caption_tokenizer(["a b"], vocab_size=100), "at least"),
                       (lambda: H.tokenizer_from_json("{not json"), "not readable"),
                       (lambda: H.tokenizer_from_json(json.dumps(
                           {"tokens": [], "merges": [], "max_length": 8})), "tokens")]:
        with pytest.raises(InputError) as info:
            call()
        assert word in str(info.value) and "\n" not in str(info.value)


# ================================================================================== config
def test_config_ids_match_the_tokenizer_and_mismatch_is_one_line(tok, world):
    config = H.small_clip_config(tok, **TINY)
    tc = config.text_config
    assert (tc.vocab_size, tc.bos_token_id, tc.eos_token_id, tc.pad_token_id) == \
        (len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    other = H.train_caption_tokenizer(world.captions, vocab_size=300, max_length=48)
    with pytest.raises(InputError) as info:
        H.ClipStyle(H.build_clip(config), other)
    assert "vocab_size" in str(info.value) and "\n" not in str(info.value)
    config.text_config.eos_token_id = 5
    with pytest.raises(InputError, match="eos_token_id 5"):
        H.check_fits(config, tok)
    with pytest.raises(InputError, match="not a multiple"):
        H.small_clip_config(tok, image_size=30, patch_size=8)


def test_text_pooling_is_at_the_first_eos(model, world):
    """Independent reference: the final hidden state at the eos position found by a loop,
    projected by hand (a text longer than the model's positions is cut by hand, keeping its
    eos last); padding in a batch must not change a caption's embedding."""
    long = world.captions[7] + " and then a long tail of many more words" * 5
    texts = [world.captions[0], "red", long]
    got = model.embed_texts(texts)
    clip = model.clip
    with torch.no_grad():
        for i, text in enumerate(texts):
            ids = model.tokenizer(text)["input_ids"]
            limit = clip.config.text_config.max_position_embeddings
            if len(ids) > limit:
                ids = ids[:limit - 1] + [ids[-1]]
            eos = next(k for k, t in enumerate(ids) if t == model.tokenizer.eos_token_id)
            hidden = clip.text_model(input_ids=torch.tensor([ids])).last_hidden_state[0, eos]
            ref = torch.nn.functional.normalize(clip.text_projection(hidden), dim=-1)
            assert np.allclose(got[i], ref.numpy(), atol=1e-5)
    assert np.allclose(model.embed_texts(texts[:1]), got[:1], atol=1e-5)


# ================================================================================ wrapper
def test_embeddings_shapes_norms_determinism_and_bad_input(model, tok, world):
    x = world.images[:5]
    v, t = model.embed_images(x), model.embed_texts(world.captions[:7])
    assert v.shape == (5, 16) and t.shape == (7, 16) and v.dtype == t.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(model.embed_images(x, batch_size=2), v, atol=1e-5)
    assert np.allclose(model.embed_texts(world.captions[:7], batch_size=3), t, atol=1e-5)
    torch.manual_seed(0)
    twin = H.ClipStyle(H.build_clip(H.small_clip_config(tok, **TINY)), tok).eval()
    assert np.array_equal(twin.embed_images(x), v)
    assert np.array_equal(twin.embed_texts(world.captions[:7]), t)
    assert model.embed_texts([]).shape == (0, 16)
    for call, word in [(lambda: model.embed_images(x.astype(np.float32)), "uint8"),
                       (lambda: model.embed_images(x[..., 0]), r"\[N, H, W, 1\]"),
                       (lambda: model.embed_texts("a red circle"), "list of strings"),
                       (lambda: model.embed_texts(["ok", 3]), "text 1")]:
        with pytest.raises(InputError, match=word):
            call()


def test_retrieval_metrics_match_a_brute_force_r_at_1(model, world):
    images = world.indices("test")
    got = H.retrieval_metrics(model, world, images)
    caps = world.caption_indices(images)
    v = model.embed_images(world.images[images])
    t = model.embed_texts([world.captions[j] for j in caps])
    own = [int(np.flatnonzero(images == world.caption_image[j])[0]) for j in caps]
    hits = [int(np.argmax(t[q] @ v.T)) == own[q] for q in range(len(caps))]
    assert got["text->image"]["R@1"] == pytest.approx(np.mean(hits))
    hits = [own[int(np.argmax(v[i] @ t.T))] == i for i in range(len(images))]
    assert got["image->text"]["R@1"] == pytest.approx(np.mean(hits))


# ============================================================================ pretrained
def test_save_pretrained_and_load_pretrained_clip_round_trip(model, world, tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    folder = model.save_pretrained(tmp_path / "clip")
    loaded = H.load_pretrained_clip(folder, device="cpu")
    assert len(loaded.tokenizer) == len(model.tokenizer)
    texts, x = world.captions[:6], world.images[:4]
    assert np.allclose(loaded.embed_texts(texts), model.embed_texts(texts), atol=1e-5)
    assert np.allclose(loaded.embed_images(x), model.embed_images(x), atol=1e-5)
    ref, proc = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    with torch.no_grad():
        out = ref(**proc(text=texts, images=list(x), padding=True, truncation=True,
                        return_tensors="pt"))
    assert np.allclose(loaded.embed_texts(texts), out.text_embeds.numpy(), atol=1e-5)
    assert np.allclose(loaded.embed_images(x), out.image_embeds.numpy(), atol=1e-5)
    with pytest.raises(InputError) as info:
        H.load_pretrained_clip(tmp_path / "missing")
    assert "huggingface-cli download" in str(info.value) and "\n" not in str(info.value)


# ============================================================================== training
@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss_and_the_checkpoint_round_trips(tmp_path):
    from mmkit.checkpoints import read, save

    spec = H.CHECKPOINTS["clip_world"]
    small = {**spec.config, **TINY, "n_train": 80, "n_val": 40, "steps": 40, "batch_size": 16,
             "warmup": 5, "lr": 3e-3, "bpe_vocab": 400, "max_length": 48}
    size = len(H.train_caption_tokenizer(World(n=80, seed=small["world_seed"]).captions, 400))
    with pytest.raises(InputError, match=f"vocab_size={size}"):
        H.train_clip_style({**small, "vocab_size": size + 1}, False)
    small["vocab_size"] = size
    trained = H.train_clip_style(small, False)
    m = trained.metrics
    assert m["train_loss_last_20_steps"] < m["train_loss_first_20_steps"]
    assert trained.data["world"]["seed"] != 0 and trained.data["val_world"]["seed"] != 0
    save(trained, spec, small, tmp_path, 1.0, 0)
    back, manifest = read(spec, tmp_path, small)
    assert manifest["metrics"] == m
    mine, theirs = trained.model.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    texts = ["a red circle", "two small blue squares on the left"]
    assert back.tokenizer(texts)["input_ids"] == trained.model.tokenizer(texts)["input_ids"]
    assert np.array_equal(back.embed_texts(texts), trained.model.embed_texts(texts))


@pytest.mark.slow
def test_committed_checkpoint_tokenizer_is_reproduced_from_its_training_world():
    from mmkit.checkpoints import PACKAGE_DIR, CheckpointProblem, read

    spec = H.CHECKPOINTS["clip_world"]
    try:
        model, manifest = read(spec, PACKAGE_DIR)
    except CheckpointProblem as exc:
        pytest.skip(f"no committed clip_world checkpoint ({exc})")
    cfg = manifest["config"]
    captions = World(n=cfg["n_train"], seed=cfg["world_seed"]).captions
    fresh = H.train_caption_tokenizer(captions, cfg["bpe_vocab"], cfg["max_length"])
    assert H.tokenizer_to_json(fresh) == H.tokenizer_to_json(model.tokenizer)
    assert len(model.tokenizer) == cfg["vocab_size"] == model.clip.config.text_config.vocab_size
