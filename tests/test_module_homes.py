"""Modules split along their concepts: the old import paths give the very objects of the new
homes, every checkpoint is registered once by the module that defines it, renamed words keep
a deprecated alias, and leave-one-out tuning (moved into mmkit.index.tune) measures what it
says against a brute-force reference."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from mmkit import checkpoints as ck

#: old module -> {new module: names it must re-export from there}
MOVED = {
    "mmkit.features.text_encoders": {
        "mmkit.features.word2vec": ["SkipGram", "nearest_words", "synonym_neighbour_rate"],
        "mmkit.features.sentence_encoders": ["GRUTextEncoder", "LSTMTextEncoder", "info_nce"],
        "mmkit.features.minilm": ["MiniLMEncoder", "load_minilm_tokenizer", "MINILM_VOCAB"],
        "mmkit.features.ocr": ["read_sign_words", "OcrSettings", "ocr_cache_path", "word_query"],
    },
    "mmkit.features.visual_cnn": {
        "mmkit.features.image_encoder": ["ImageEncoder", "embed_images", "images_to_tensor",
                                         "IMAGENET_MEAN", "IMAGENET_STD"],
        "mmkit.features.pretrained": ["PretrainedEncoder", "efficientnet_lite0",
                                      "efficientnet_pytorch_to_timm", "imagenet_label"],
        "mmkit.features.explain": ["grad_cam", "similarity_grad_cam", "input_gradients"],
    },
    "mmkit.encoders.metric": {
        "mmkit.encoders.metric_learning": ["train_metric", "retrieval_scores", "CHECKPOINTS",
                                           "seen_classes_mask"],
    },
    "mmkit.encoders.joint": {
        "mmkit.encoders.evaluation": ["PROTOCOL", "ProtocolData", "protocol_results",
                                      "protocol_unseen_classes", "JOINT_DIRECTIONS"],
    },
    "mmkit.encoders.speech": {
        "mmkit.encoders.evaluation": ["protocol_speech_results"],
    },
    "mmkit.encoders.hf_clip": {
        "mmkit.encoders.clip.tokenization": ["SPECIALS", "train_caption_tokenizer",
                                             "tokenizer_to_json", "tokenizer_from_json"],
        "mmkit.encoders.clip.configuration": ["small_clip_config", "check_fits",
                                              "check_pretrained_fits", "ClipStyleConfig"],
        "mmkit.encoders.clip.modeling": ["ClipStyle", "build_clip", "build_clip_style",
                                         "image_processor", "load_clip", "load_pretrained_clip",
                                         "feature_tensor", "DEFAULT_CLIP", "SUGGESTED_FOLDER"],
        "mmkit.encoders.clip.training": ["train_clip_style", "CHECKPOINTS"],
        "mmkit.encoders.evaluation": ["retrieval_metrics"],
        "mmkit.encoders.clip": ["ClipStyle", "train_clip_style", "retrieval_metrics"],
    },
    "mmkit.scale.build": {"mmkit.scale.search": ["FolderIndex", "search_folder"]},
    "mmkit.data.captions": {"mmkit.data.vocab": ["tokenize", "TEMPLATE_WORDS"]},
    "mmkit.index": {"mmkit.index.factory": ["build_index", "load_index"]},
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_give_the_objects_of_the_new_homes(old):
    before = importlib.import_module(old)
    for new, names in MOVED[old].items():
        after = importlib.import_module(new)
        for name in names:
            assert getattr(before, name) is getattr(after, name), f"{old}.{name}"
        assert all(getattr(before, n) is not None for n in getattr(before, "__all__", []))


def test_each_checkpoint_is_registered_once_by_the_module_that_defines_it():
    seen: dict[str, str] = {}
    for module in ck.SPEC_MODULES:
        for name, spec in importlib.import_module(module).CHECKPOINTS.items():
            assert name not in seen, f"{name} registered by {seen.get(name)} and {module}"
            seen[name] = module
            # the trainer lives in the registering module, or is the shared loop of its
            # package (mmkit.challenges.training trains every challenge model)
            shared = module.rsplit(".", 1)[0] + ".training"
            assert spec.train.__module__ in (module, shared), (name, spec.train.__module__)
    assert {"word2vec_world", "gru_text", "lstm_text", "metric_world_cnn"} <= set(seen)
    assert seen["word2vec_world"] == "mmkit.features.word2vec"
    assert seen["metric_world_cnn"] == "mmkit.encoders.metric_learning"
    # the old module still lists the text checkpoints, as the same specs
    from mmkit.features import text_encoders

    assert text_encoders.CHECKPOINTS == {n: ck.get_spec(n) for n in text_encoders.CHECKPOINTS}


def test_index_metrics_is_a_deprecated_alias_of_similarities():
    import mmkit.index as I
    from mmkit.index import base

    for module in (I, base):
        with pytest.warns(DeprecationWarning, match="SIMILARITIES"):
            assert module.METRICS == I.SIMILARITIES == ("ip", "cosine", "l2")
    with pytest.raises(AttributeError):
        I.NO_SUCH_NAME  # noqa: B018


def test_leave_one_out_tuning_matches_a_brute_force_reference():
    pytest.importorskip("faiss")
    from mmkit.index import build_index, clustered_vectors, tune_leave_one_out
    from mmkit.index.tune import drop_self

    x = clustered_vectors(600, 16, seed=3).numpy().astype(np.float32)
    ids = np.arange(1000, 1600, dtype=np.int64)             # ids are not positions
    index = build_index("hnsw", dim=16, metric="cosine", M=8, ef_construction=16)
    index.add(x, ids=ids)
    k = 5
    result, n = tune_leave_one_out(index, x, ids, 0.9, k, queries=120, seed=4)
    assert n == 120 and result.param == "ef_search"

    rows = np.sort(np.random.default_rng(4).choice(600, 120, replace=False))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit[rows] @ unit.T
    sims[np.arange(120), rows] = -np.inf                      # leave the query itself out
    truth = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    found = drop_self(index.search(x[rows], k + 1), torch.from_numpy(ids[rows]), k).ids.numpy()
    assert not (found == ids[rows][:, None]).any()
    recall = np.mean([len(set(f) & set(ids[t])) / k for f, t in zip(found, truth)])
    assert result.recall == pytest.approx(recall, abs=1e-6)
    assert result.reached == (recall >= 0.9)
