"""Text features and encoders (mmkit.features.text, mmkit.features.text_encoders) and the
checkers of notebook 02.

References are independent of the code under test: the world's own Karpathy tokenizer,
scikit-learn's CountVectorizer, sentence-transformers (MiniLM), the ``tokenizers`` library
reading tokenizer.json directly, naive per-pair loops (SGNS loss, caption grades, synonym
chance, precision/recall), the world's true sign words (OCR), and padding / batch invariance.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmkit.data import World
from mmkit.data import vocab as V
from mmkit.data.captions import tokenize
from mmkit.errors import InputError
from mmkit.exercises import nb02
from mmkit.features import text_encoders as te
from mmkit.features.text import (MAX_WORDS, WordTokenizer, as_texts, bag_of_words,
                                 caption_agreement, chance_metrics, cosine_scores,
                                 text_retrieval_metrics, text_text_ground_truth)


@pytest.fixture(scope="module")
def world():
    return World(n=60, seed=1)


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer.world()


@pytest.fixture(scope="module")
def minilm():
    return te.MiniLMEncoder()


# ------------------------------------------------------------------------------ tokenizer
def test_word_tokenizer_reproduces_the_world_tokens(world, tok):
    fitted = WordTokenizer.fit(world.captions)
    odd = ["Hello, WORLD!", "coffee-coloured -x a--b", "x2 y-3z", "  ", "ÉTÉ naïve"]
    for text in world.captions + odd:
        assert fitted.tokens(text) == tokenize(text), text
        assert tok.tokens(text) == tokenize(text), text
    words = {w for c in world.captions for w in tokenize(c)}
    assert set(fitted.words[2:]) == words
    assert set(tok.words[2:]) == V.vocabulary_words()
    assert tok.words[:2] == ["[PAD]", "[UNK]"]


def test_encode_pads_and_counts(tok):
    texts = ["A red circle.", "", "a big zebra", b"caf\xff red", "   "]
    enc = tok.encode(texts)
    assert enc.ids.dtype == torch.int64 and enc.ids.shape == (5, 3)
    assert enc.lengths.tolist() == [3, 0, 3, 2, 0]
    for row, n, text in zip(enc.ids, enc.lengths, texts):
        assert (row[n:] == tok.pad_id).all()
        words = tokenize(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        assert row[:n].tolist() == [tok.id_of(w) for w in words]
    assert enc.ids[2, 2] == tok.unk_id                      # "zebra" is not a world word
    assert (enc.report.empty, enc.report.replaced, enc.report.truncated) == (2, 1, 0)
    assert tok.decode(enc.ids[0]) == ["a", "red", "circle"]
    assert tok.encode(["", ""]).ids.shape == (2, 1)


def test_long_texts_are_truncated_and_counted(tok):
    long = " ".join(["red"] * 1000)
    enc = tok.encode([long, "a red box"])
    assert enc.ids.shape == (2, MAX_WORDS) and enc.lengths.tolist() == [MAX_WORDS, 3]
    assert enc.report.truncated == 1
    assert tok.encode([long], max_length=5).lengths.tolist() == [5]


@pytest.mark.parametrize("bad, match", [
    (["a red box", None], r"texts\[1\] is None"),
    (["a", 3], r"texts\[1\] is a int"),
    ("a red box", "single str"),
    (b"a red box", "single bytes"),
    (42, "sequence of texts"),
])
def test_bad_texts_fail_in_one_line(tok, bad, match):
    with pytest.raises(InputError, match=match) as info:
        tok.encode(bad)
    assert "\n" not in str(info.value)


def test_bytes_are_decoded_with_replacement_and_counted():
    texts, replaced = as_texts([b"red \xff\xfe box", "ok", b"plain", bytearray(b"x")])
    assert texts[0] == "red \ufffd\ufffd box" and texts[2:] == ["plain", "x"]
    assert replaced == 1


def test_tokenizer_round_trips_json(tok):
    again = WordTokenizer.from_json(tok.to_json())
    assert again.words == tok.words
    with pytest.raises(InputError, match="not a tokenizer"):
        WordTokenizer.from_json("{nope")


def test_bag_of_words_matches_sklearn(world, tok):
    from sklearn.feature_extraction.text import CountVectorizer

    texts = world.captions[:40] + [""]
    ours = bag_of_words(tok, texts)
    cv = CountVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False)
    ref = cv.fit_transform(texts).toarray()
    cols = [tok.id_of(w) for w in cv.get_feature_names_out()]
    assert np.array_equal(ours[:, cols], ref)
    assert ours[:, 0].sum() == 0 and ours[-1].sum() == 0
    assert np.array_equal(bag_of_words(tok, texts, binary=True), (ours > 0).astype(np.float32))


# ------------------------------------------------------------------ text -> text ground truth
def _naive_grade(world, a: int, b: int) -> int:
    sa, sb = world.caption_struct(a).main, world.caption_struct(b).main
    agree = 0
    for x, y in zip(sa, sb):
        if x >= 0 and y >= 0:
            if x != y:
                return 0
            agree += 1
    return min(agree, 3)


def test_caption_agreement_matches_naive_loop(world):
    ids = np.arange(0, 300, 3)
    grades, positives = text_text_ground_truth(world, ids)
    for qi, a in enumerate(ids):
        for gi, b in enumerate(ids):
            if qi == gi:
                assert grades[qi, gi] == 0 and not positives[qi, gi]
                continue
            assert grades[qi, gi] == _naive_grade(world, a, b), (a, b)
            assert positives[qi, gi] == (world.caption_image[a] == world.caption_image[b])
    assert set(np.unique(grades)) <= {0, 1, 2, 3} and (grades == 3).any()
    ex = caption_agreement(np.array([[0, 0, -1, -1, -1]]),
                           np.array([[0, 0, -1, -1, 2], [1, 0, -1, -1, -1]]))
    assert ex.tolist() == [[2, 0]]


def test_retrieval_metrics_perfect_and_chance(world):
    ids = world.caption_indices(np.arange(20))
    grades, positives = text_text_ground_truth(world, ids)
    perfect = positives * 10.0 + grades + 0.0
    np.fill_diagonal(perfect, -np.inf)
    m = text_retrieval_metrics(perfect, grades, positives)
    assert m["mAP"] == pytest.approx(1.0)
    assert m["P@10"] == pytest.approx(4 / 10)            # 4 siblings per caption
    ch = chance_metrics(grades, positives)
    assert ch["mAP"] < 0.3 and ch["P@10"] < 0.1
    s = cosine_scores(np.eye(3, dtype=np.float32))
    assert np.isneginf(np.diag(s)).all() and s[0, 1] == 0


# ------------------------------------------------------------------------------ word2vec
def test_sgns_loss_matches_naive_formula():
    torch.manual_seed(0)
    m = te.SkipGram(12, 4)
    torch.nn.init.normal_(m.out.weight)
    c, o, n = torch.tensor([1, 5, 7]), torch.tensor([2, 3, 11]), torch.tensor([[4, 6], [8, 9],
                                                                              [0, 10]])
    naive = 0.0
    m.requires_grad_(False)
    for i in range(3):
        v = m.inp.weight[c[i]]
        naive -= float(torch.log(torch.sigmoid(v @ m.out.weight[o[i]])))
        for k in n[i]:
            naive -= float(torch.log(torch.sigmoid(-(v @ m.out.weight[k]))))
    assert float(m(c, o, n)) == pytest.approx(naive / 3, rel=1e-5)


def test_skipgram_pairs_match_naive_windows(tok):
    enc = tok.encode(["a red circle on the left", "big box", ""])
    pairs = {tuple(p) for p in te.skipgram_pairs(enc, 2).tolist()}
    naive = set()
    for row, n in zip(enc.ids.tolist(), enc.lengths.tolist()):
        for i in range(n):
            for j in range(max(0, i - 2), min(n, i + 3)):
                if i != j:
                    naive.add((row[i], row[j]))
    assert pairs == naive
    assert len(te.skipgram_pairs(enc, 2)) == 2 * (5 + 4) + 2


def test_synonym_rate_on_planted_vectors(tok):
    groups = te.synonym_groups()
    assert ["red", "scarlet", "crimson"] in groups["colour"]
    words = [w for gs in groups.values() for g in gs for w in g]
    assert len(words) == len(set(words)) and all(tok.id_of(w) > 1 for w in words)
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(tok.vocab_size, 16)).astype(np.float32)
    centre = {}
    for a, gs in groups.items():
        for gi, g in enumerate(gs):
            centre[(a, gi)] = rng.normal(size=16) * 10
            for w in g:
                vec[tok.id_of(w)] = centre[(a, gi)] + rng.normal(size=16) * 0.1
    rate, chance = te.synonym_neighbour_rate(vec, tok, groups)
    assert rate == 1.0
    assert chance == pytest.approx(_brute_chance(groups))
    shuffled = rng.normal(size=vec.shape).astype(np.float32)
    assert te.synonym_neighbour_rate(shuffled, tok, groups)[0] < 0.3
    assert te.nearest_words(vec, tok, "red", 2)[0][0] in ("scarlet", "crimson")
    with pytest.raises(InputError, match="not in the vocabulary"):
        te.nearest_words(vec, tok, "zebra")


def _brute_chance(groups) -> float:
    """Average over words of P(a uniformly drawn other word is a synonym), by enumeration."""
    entries = [(w, (a, gi)) for a, gs in groups.items() for gi, g in enumerate(gs) for w in g]
    per_word = []
    for w, g in entries:
        others = [h for v, h in entries if v != w]
        per_word.append(sum(h == g for h in others) / len(others))
    return float(np.mean(per_word))


def test_mean_word_vectors_naive(tok):
    vec = np.arange(tok.vocab_size * 2, dtype=np.float32).reshape(-1, 2)
    enc = tok.encode(["red box", ""])
    out = te.mean_word_vectors(vec, enc)
    assert np.allclose(out[0], (vec[tok.id_of("red")] + vec[tok.id_of("box")]) / 2)
    assert np.array_equal(out[1], [0, 0])


# ------------------------------------------------------------------------ sentence encoders
@pytest.mark.parametrize("cls", [te.GRUTextEncoder, te.LSTMTextEncoder])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_recurrent_encoder_is_padding_and_batch_invariant(tok, cls, bidirectional):
    torch.manual_seed(0)
    m = cls(tok.vocab_size, 8, 16, out_dim=12, bidirectional=bidirectional).eval()
    texts = ["a red circle on the left", "box", "a big striped star above a cross", ""]
    enc = tok.encode(texts)
    with torch.no_grad():
        together = m(enc.ids, enc.lengths)
        assert together.shape == (4, 12) and m.out_dim == 12
        for i, t in enumerate(texts):
            alone = tok.encode([t])
            wide = torch.cat([alone.ids, torch.zeros(1, 7, dtype=torch.int64)], 1)
            assert torch.allclose(m(wide, alone.lengths), together[i:i + 1], atol=1e-6)
        empty_again = m(tok.encode(["   "]).ids, torch.tensor([0]))
    assert torch.allclose(empty_again, together[3:4], atol=1e-6)
    # an unpacked run over exactly the real tokens agrees (forward direction's last state)
    if not bidirectional:
        with torch.no_grad():
            x = m.embed(enc.ids[:1, :enc.lengths[0]])
            _, h = m.rnn(x)
            h = h[0] if cls is te.LSTMTextEncoder else h
            assert torch.allclose(m.proj(h[-1]), together[:1], atol=1e-6)
    with pytest.raises(InputError, match="ids must be"):
        m(enc.ids[0], enc.lengths)


def test_embed_texts_normalised_and_ordered(tok):
    torch.manual_seed(0)
    m = te.GRUTextEncoder(tok.vocab_size, 8, 16, out_dim=6)
    texts = ["a red box", "a blue circle", "", "big star"]
    z = m.embed_texts(texts, batch_size=3)
    assert z.dtype == np.float32 and z.shape == (4, 6)
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert np.allclose(z[1:2], m.embed_texts(texts[1:2]), atol=1e-6)
    assert m.last_report.n == 1 and m.training


def test_info_nce_prefers_aligned_pairs():
    torch.manual_seed(0)
    a = torch.randn(8, 5)
    good = te.info_nce(a, a + 0.01 * torch.randn(8, 5), 0.1)
    bad = te.info_nce(a, torch.randn(8, 5), 0.1)
    assert float(good) < 0.1 < float(bad)


_TINY = {"word2vec_world": {"epochs": 2, "world": {"n": 200, "seed": 1101},
                            "val_world": {"n": 40, "seed": 1102}},
         "gru_text": {"steps": 40, "batch_size": 64, "hidden": 32, "embed_dim": 16,
                      "world": {"n": 200, "seed": 1201}, "val_world": {"n": 40, "seed": 1202}},
         "lstm_text": {"steps": 40, "batch_size": 64, "hidden": 32, "embed_dim": 16,
                       "world": {"n": 200, "seed": 1301}, "val_world": {"n": 40, "seed": 1302}}}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(te.CHECKPOINTS))
def test_trainer_learns_and_checkpoint_round_trips(name, tmp_path):
    from mmkit import checkpoints as ck

    spec = te.CHECKPOINTS[name]
    config = {**spec.config, **_TINY[name]}
    threads = torch.get_num_threads()
    trained = spec.train(config, False)
    assert torch.get_num_threads() == threads
    m = trained.metrics
    if name == "word2vec_world":
        assert m["val_loss"] < m["val_loss_before"]
    else:
        assert m["train_loss_last_20_steps"] < m["train_loss_first_20_steps"]
        assert m["val_map"] > m["val_map_before"]
    assert trained.data["world"]["seed"] != 0          # never the evaluation world
    ck.save(trained, spec, config, tmp_path, 1.0, 0)
    model, manifest = ck.read(spec, tmp_path, config)
    for k, v in trained.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert manifest["metrics"] == m


@pytest.mark.parametrize("name", sorted(te.CHECKPOINTS))
def test_committed_checkpoints_load(name):
    from mmkit import checkpoints as ck

    spec = te.CHECKPOINTS[name]
    model, manifest = ck.read(spec, ck.PACKAGE_DIR)       # raises if missing or mismatched
    assert manifest["config"] == spec.config
    assert manifest["config"]["vocab_size"] == WordTokenizer.world().vocab_size
    assert manifest["training_data"]["world"]["seed"] != 0
    assert manifest["bytes"] < 5_000_000


# ------------------------------------------------------------------------------ MiniLM
@pytest.mark.slow
def test_minilm_matches_sentence_transformers(world, minilm):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(te.minilm_folder()), device="cpu")
    texts = world.captions[:24] + ["", "  ", " ".join(["scarlet"] * 400)]
    ref = st.encode(texts, batch_size=8, convert_to_numpy=True)
    ours = minilm.embed_texts(texts, batch_size=5)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    assert np.abs(ours - ref).max() < 1e-5
    assert minilm.last_report.empty == 2 and minilm.last_report.truncated == 1
    assert st.max_seq_length == te.MINILM_MAX_TOKENS


def test_minilm_mean_pooling_from_parts(minilm):
    batch = minilm.tokenizer(["a red box", "a big striped star"], padding=True,
                             return_tensors="pt")
    with torch.no_grad():
        hidden = minilm.model(**batch).last_hidden_state
    n = int(batch["attention_mask"][0].sum())
    first = hidden[0, :n].mean(0)
    expected = first / first.norm()
    assert torch.allclose(minilm(["a red box"])[0], expected, atol=1e-5)


def test_minilm_tokenizer_is_complete_and_frozen(minilm):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(te.minilm_folder() / "tokenizer.json"))
    raw.no_padding()                                   # the file pads every text to 128
    assert raw.get_vocab_size() == te.MINILM_VOCAB == len(minilm.tokenizer)
    text = "A coffee-coloured rhombus, pinstriped."
    assert minilm.tokenizer(text)["input_ids"] == raw.encode(text).ids
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.model.training
    with pytest.raises(InputError, match=r"texts\[0\] is None"):
        minilm.embed_texts([None])


def test_minilm_refuses_a_foreign_vocabulary(tmp_path):
    folder = te.minilm_folder()
    for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_text((folder / name).read_text())
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nred\n")
    with pytest.raises(InputError, match="expected 30522"):
        te.load_minilm_tokenizer(tmp_path)


def test_minilm_cache_is_keyed_by_texts(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path))
    a = minilm.embed_texts(["a red box"], cache=True)
    b = minilm.embed_texts(["a blue box"], cache=True)
    assert not np.allclose(a, b)
    assert len(list((tmp_path / "cache").glob("minilm-*.npy"))) == 2
    assert np.array_equal(minilm.embed_texts(["a red box"], cache=True), a)


# ------------------------------------------------------------------------------ OCR
@pytest.fixture(scope="module")
def sign_world():
    return World(n=16, seed=7, sign_prob=0.75)


@pytest.mark.slow
def test_ocr_reads_the_sign_words(sign_world, tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("ocr")
    reads = te.read_sign_words(sign_world.images, cache_folder=folder)
    truth = [V.SIGN_WORDS[k] if k >= 0 else "" for k in sign_world.words]
    signs = [i for i, t in enumerate(truth) if t]
    assert len(signs) >= 8
    assert np.mean([reads[i] == truth[i] for i in signs]) >= 0.8
    assert all(r == "" or r.isalpha() and r.islower() for r in reads)
    assert sum(reads[i] != "" for i in range(16) if not truth[i]) <= 1
    # the cache answers the second call: no OCR engine is needed any more
    path = te.ocr_cache_path(te.OcrSettings(), folder)
    data = json.loads(path.read_text())
    assert data["format"] == "mmkit.ocr" and len(data["reads"]) == len(set(
        te.image_key(x) for x in sign_world.images))
    monkeypatch.setattr("mmkit.features.ocr._ocr_engine", None)  # uncached OCR would fail now
    assert te.read_sign_words(sign_world.images[::-1], cache_folder=folder) == reads[::-1]
    assert te.ocr_cache_path(te.OcrSettings(upscale=3), folder) != path


def test_ocr_grayscale_and_bad_images(sign_world, tmp_path):
    i = int(np.flatnonzero(sign_world.words >= 0)[0])
    gray = sign_world.images[i:i + 1].mean(-1).astype(np.uint8)
    read = te.read_sign_words(gray, cache=False)
    assert read == [V.SIGN_WORDS[sign_world.words[i]]]
    for bad, match in [(sign_world.images[0], "one image"), (sign_world.images.astype(np.float32),
                                                         r"must lie in \[0, 1\]"),
                       (sign_world.images[..., :2], "shape")]:
        with pytest.raises(InputError, match=match):
            te.read_sign_words(bad, cache=False)
    with pytest.raises(InputError, match="upscale"):
        te.OcrSettings(upscale=0)


def test_sign_text_and_word_query():
    boxes = [te.OcrBox("8", 0.99, ()), te.OcrBox("PIZZA", 0.9, ()), te.OcrBox("Zo", 0.5, ())]
    assert te.sign_text(boxes) == "pizza" and te.sign_text(boxes[:1]) == ""
    reads, truth = ["tea", "tea", "", "tea", "zoo"], ["tea", "", "tea", "tea", "zoo"]
    assert te.word_query(reads, truth, "tea") == (2 / 3, 2 / 3)
    assert te.word_query(reads, truth, "bus") == (0.0, 0.0)
    with pytest.raises(InputError, match="differ in length"):
        te.word_query(reads, truth[:2], "tea")


# ------------------------------------------------------------------------------ exercises
def test_check_wordpiece_count():
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(te.minilm_folder() / "tokenizer.json"))
    raw.no_padding()
    caption = "A pinstriped rhombus next to a sign that says sushi."
    n = len(raw.encode(caption, add_special_tokens=False).ids)
    assert nb02.check_wordpiece_count(caption, n)
    assert "[CLS]" in str(nb02.check_wordpiece_count(caption, n + 2))
    assert not nb02.check_wordpiece_count(caption, n - 1)
    assert "integer" in str(nb02.check_wordpiece_count(caption, "ten"))
    assert "no answer" in str(nb02.check_wordpiece_count(caption, None))


def _naive_top3_rate(vectors, tok, groups) -> float:
    entries = [(w, (a, gi)) for a, gs in groups.items() for gi, g in enumerate(gs) for w in g]
    hits = 0
    for w, g in entries:
        v = vectors[tok.id_of(w)]
        sims = []
        for u, h in entries:
            if u != w:
                x = vectors[tok.id_of(u)]
                sims.append((float(v @ x) / float(np.linalg.norm(v) * np.linalg.norm(x)), h))
        sims.sort(key=lambda t: -t[0])
        hits += any(h == g for _, h in sims[:3])
    return hits / len(entries)


def test_check_synonym_top3(tok):
    groups = te.synonym_groups()
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(tok.vocab_size, 8)).astype(np.float64)
    expected = _naive_top3_rate(vectors, tok, groups)
    assert 0 < expected < 1
    assert nb02.check_synonym_top3(vectors, tok, groups, expected)
    top1 = te.synonym_neighbour_rate(vectors, tok, groups)[0]
    assert top1 != expected and "top-1" in str(nb02.check_synonym_top3(vectors, tok, groups, top1))
    assert not nb02.check_synonym_top3(vectors, tok, groups, expected + 0.01)
    assert "number" in str(nb02.check_synonym_top3(vectors, tok, groups, "x"))
    assert not nb02.check_synonym_top3(vectors, tok, groups, None)


def test_chance_of_k_random_neighbours_by_simulation(tok):
    groups = {"a": [["red", "scarlet", "crimson"], ["blue", "cobalt"]], "b": [["big", "huge"]]}
    rate, chance = te.synonym_neighbour_rate(np.eye(tok.vocab_size), tok, groups, k=3)
    entries = [(w, g) for g, ws in enumerate([["red", "scarlet", "crimson"], ["blue", "cobalt"],
                                              ["big", "huge"]]) for w in ws]
    rng = np.random.default_rng(0)
    sims = []
    for _ in range(20000):
        w, g = entries[rng.integers(len(entries))]
        others = [h for v, h in entries if v != w]
        sims.append(any(others[i] == g for i in rng.choice(len(others), 3, replace=False)))
    assert chance == pytest.approx(np.mean(sims), abs=0.01)


def test_check_caption_grade(world):
    pairs = [(0, 1), (0, 7), (3, 40), (12, 13), (5, 200)]
    grades = {_naive_grade(world, a, b) for a, b in pairs}
    assert len(grades) >= 2
    for a, b in pairs:
        g = _naive_grade(world, a, b)
        assert nb02.check_caption_grade(world, a, b, g)
        assert not nb02.check_caption_grade(world, a, b, (g + 1) % 4)
    assert "integer" in str(nb02.check_caption_grade(world, 0, 1, 1.5))


def test_check_word_query():
    reads = ["tea", "tea", "", "tea", "zoo", "te"]
    truth = ["tea", "", "tea", "tea", "zoo", "tea"]
    hits = sum(r == t == "tea" for r, t in zip(reads, truth))
    p, r = hits / sum(x == "tea" for x in reads), hits / sum(x == "tea" for x in truth)
    assert nb02.check_word_query(reads, truth, "tea", (p, r))
    assert "swapped" in str(nb02.check_word_query(reads, truth, "tea", (r, p)))
    assert not nb02.check_word_query(reads, truth, "tea", (1.0, 1.0))
    assert "pair" in str(nb02.check_word_query(reads, truth, "tea", 0.5))
