"""The model families' typed configs: every committed checkpoint's config round-trips through
its dataclass exactly (so no checkpoint retrains), the models and trainers take the dataclass
or its dict alike, and bad values are ONE line that names every problem."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace

import pytest
import torch

from mmkit import checkpoints as ck
from mmkit.encoders.clip.configuration import ClipStyleConfig
from mmkit.encoders.config import TrainWorld
from mmkit.encoders.joint import JointConfig, build_joint
from mmkit.encoders.joint_training import BASE_CONFIG, train_joint
from mmkit.encoders.metric_learning import MetricDigitsConfig, MetricWorldConfig
from mmkit.encoders.speech import SpeechConfig, SpeechTower
from mmkit.errors import InputError
from mmkit.challenges.compact import StudentConfig
from mmkit.challenges.training import ChallengeConfig
from mmkit.features.audio_cnn import AudioCNNConfig
from mmkit.features.sentence_encoders import SentenceEncoderConfig
from mmkit.features.visual_cnn import VisualCNNConfig
from mmkit.features.word2vec import Word2VecConfig

#: the dataclass of each trained family, by checkpoint name prefix
FAMILIES = {"joint_speech": SpeechConfig, "joint_student": StudentConfig, "joint_": JointConfig, "clip_world": ClipStyleConfig,
            "metric_world": MetricWorldConfig, "metric_digits": MetricDigitsConfig,
            "visual_": VisualCNNConfig, "word2vec_": Word2VecConfig,
            "gru_text": SentenceEncoderConfig, "lstm_text": SentenceEncoderConfig,
            "audio_cnn_": AudioCNNConfig, "challenge_": ChallengeConfig}


def family(name: str):
    return next((cls for prefix, cls in FAMILIES.items() if name.startswith(prefix)), None)


def committed() -> list[str]:
    return sorted(p.stem for p in ck.PACKAGE_DIR.glob("*.json") if family(p.stem))


def test_every_family_has_committed_checkpoints():
    names = committed()
    assert {family(n) for n in names} == set(FAMILIES.values())
    assert set(names) == set(ck.specs())       # every registered model is committed
    # every committed checkpoint has a typed config
    assert names == sorted(p.stem for p in ck.PACKAGE_DIR.glob("*.json"))


@pytest.mark.parametrize("name", committed())
def test_committed_configs_round_trip_exactly(name):
    """Same keys in the same order, same values of the same JSON types, same nesting, and the
    very dict the registered spec holds (what loading compares the manifest with)."""
    manifest = json.loads((ck.PACKAGE_DIR / f"{name}.json").read_text(encoding="utf-8"))
    config = manifest["config"]
    cfg = family(name).from_dict(config)
    back = cfg.to_dict()
    assert json.dumps(back) == json.dumps(config)
    spec = ck.get_spec(name)
    assert isinstance(spec.config, dict)
    assert json.dumps(spec.config) == json.dumps(config)
    assert family(name).from_dict(back) == cfg


def test_defaults_are_written_once_and_reach_the_models():
    cfg = JointConfig.from_dict(BASE_CONFIG)
    assert cfg == JointConfig()
    assert cfg.world == TrainWorld(n=20000, seed=2001)
    assert cfg.audio_backbone.channels == (16, 32, 64)
    # a partial dict takes the defaults
    assert JointConfig.from_dict({"dim": 8, "width": 8}) == replace(JointConfig(), dim=8, width=8)
    # keys that no checkpoint records appear only when set
    assert "effnet_size" not in cfg.to_dict()
    bigger = JointConfig.from_dict({**BASE_CONFIG, "effnet_size": 224})
    assert bigger.to_dict()["effnet_size"] == 224
    with pytest.raises(FrozenInstanceError):
        cfg.dim = 3  # type: ignore[misc]


TINY = {"dim": 16, "width": 8, "hidden": 16, "word_dim": 8, "audio_init": None,
        "image_init": None}


def test_the_model_takes_the_dataclass_or_its_dict_alike():
    config = {**BASE_CONFIG, **TINY}
    torch.manual_seed(0)
    a = build_joint(config).state_dict()
    torch.manual_seed(0)
    model = build_joint(JointConfig.from_dict(config))
    b = model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert model.config == JointConfig.from_dict(config) and model.dim == 16
    tower = SpeechTower({**SpeechConfig().to_dict(), "dim": 12})
    assert tower.config.dim == 12 and tower.head[-1].out_features == 12


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_joint_values_are_one_line_naming_every_problem():
    with pytest.raises(InputError) as exc:
        JointConfig(dim=0, loss="triplet", lr=-1e-3, world={"n": 100, "seed": 0}, se=1,
                    temperature=float("nan"), eval_every=0)
    text = one_line(exc)
    assert text.startswith("JointConfig: ")
    for part in ("dim must be a positive integer, got 0",
                 "loss must be one of vse, vsepp, infonce, got 'triplet'",
                 "lr must be > 0, got -0.001", "se must be True or False, got 1",
                 "temperature must be a finite number", "eval_every (or None)",
                 "world: seed 0 is the evaluation world's"):
        assert part in text, (part, text)


@pytest.mark.parametrize("changes, message", [
    ({"heads": 5}, "heads 5 must divide the ViT block's width 4 x width = 96"),
    ({"image_tower": "effnet"}, "image_init must be None with image_tower 'effnet'"),
    ({"image_tower": "vit"}, "image_tower must be one of cnn, effnet"),
    ({"audio_backbone": {"channels": [16, 32], "out_dim": 128}}, "channels must list 3"),
    ({"audio_backbone": {"channels": [16, 32, 64], "out_dim": 0}},
     "audio_backbone: out_dim must be a positive integer, got 0"),
    ({"world": {"n": 1000}}, "world: missing key(s) seed"),
    ({"world": {"n": 0, "seed": 5}}, "world: n must be a positive integer"),
    ({"world": [1000, 5]}, "world must be a dict"),
    ({"batch_size": 12.0}, "batch_size must be a positive integer, got 12.0"),
    ({"dim": True}, "dim must be a positive integer, got True"),
    ({"seconds": -5}, "seconds (or None) must be > 0"),
])
def test_bad_joint_values(changes, message):
    with pytest.raises(InputError) as exc:
        JointConfig.from_dict({**BASE_CONFIG, **changes})
    assert message in one_line(exc)


def test_unknown_keys_and_wrong_types_are_refused():
    with pytest.raises(InputError, match=r"JointConfig: unknown key\(s\) dimension"):
        JointConfig.from_dict({**BASE_CONFIG, "dimension": 3})
    with pytest.raises(InputError, match="expected a dict or a SpeechConfig, got list"):
        SpeechConfig.from_dict([1, 2])


def test_trainers_check_the_config_first():
    """A bad config is refused before any world is generated or weights are loaded."""
    with pytest.raises(InputError, match="evaluation world"):
        train_joint({**BASE_CONFIG, **TINY, "world": {"n": 100, "seed": 0}}, progress=False)
    with pytest.raises(InputError, match="unknown key"):
        train_joint({**BASE_CONFIG, "step": 3}, progress=False)


def test_bad_speech_values():
    with pytest.raises(InputError) as exc:
        SpeechConfig(captions_per_image=6, dropout=1.0, channels=[16, 0, 64], joint="",
                     world={"n": 10, "seed": 0}, evaluate="yes")
    text = one_line(exc)
    for part in ("captions_per_image must be an integer in [1, 5], got 6",
                 "dropout must be in [0, 1), got 1.0", "channels must be a non-empty list",
                 "joint must be a checkpoint name", "evaluate must be True or False",
                 "world: seed 0 is the evaluation world's"):
        assert part in text, (part, text)


def test_bad_clip_values():
    with pytest.raises(InputError) as exc:
        ClipStyleConfig(image_size=60, hidden=90, heads=4, batch_size=600, n_train=500,
                        world_seed=0, vocab_size=300, warmup=-1)
    text = one_line(exc)
    for part in ("vocab_size must be an integer >= 515, got 300",
                 "image_size 60 is not a multiple of patch_size 8",
                 "hidden 90 is not divisible by 4 heads", "batch_size 600 exceeds n_train 500",
                 "world_seed 0 is the evaluation world's", "warmup must be a non-negative"):
        assert part in text, (part, text)
    with pytest.raises(InputError, match="warmup 50 exceeds steps 40"):
        ClipStyleConfig(steps=40, warmup=50)


def test_the_clip_config_is_the_models_config():
    """``ClipStyleConfig.clip_config`` gives the committed model's ``CLIPConfig`` sizes."""
    pytest.importorskip("transformers")
    cfg = ClipStyleConfig()
    clip = cfg.clip_config()
    assert clip.text_config.vocab_size == cfg.vocab_size
    assert (clip.text_config.bos_token_id, clip.text_config.eos_token_id,
            clip.text_config.pad_token_id) == (0, 1, 2)
    assert clip.vision_config.image_size == 64 and clip.projection_dim == 64
    assert clip.text_config.max_position_embeddings == cfg.max_length


def test_bad_metric_values():
    with pytest.raises(InputError) as exc:
        MetricWorldConfig(loss="arcface", miner="random", world_seed=2499, eval_seed=2500,
                          classes_per_batch=1, image_size=60)
    text = one_line(exc)
    for part in ("loss must be one of contrastive, triplet, ranking, ntxent",
                 "miner must be one of none, batch_all", "classes_per_batch must be an integer",
                 "image_size 60 is not a multiple of 8",
                 "the validation world's seed world_seed + 1 = 2500 is eval_seed"):
        assert part in text, (part, text)
    with pytest.raises(InputError, match=r"train_digits must be distinct digits 0-9"):
        MetricDigitsConfig(train_digits=[0, 1, 12])


# ------------------------------------------------------------------ the feature families
FEATURE_CHECKPOINTS = ("visual_small_cnn", "visual_resnet18_w16", "word2vec_world", "gru_text",
                       "lstm_text", "audio_cnn_sound", "audio_cnn_speech")


@pytest.mark.parametrize("name", FEATURE_CHECKPOINTS)
def test_feature_models_take_the_dataclass_or_its_dict_alike(name):
    spec = ck.get_spec(name)
    cfg = family(name).from_dict(spec.config)
    torch.manual_seed(0)
    a = spec.build(spec.config).state_dict()
    torch.manual_seed(0)
    b = spec.build(cfg).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_feature_defaults_are_written_once():
    assert Word2VecConfig().to_dict() == ck.get_spec("word2vec_world").config
    assert SentenceEncoderConfig().to_dict() == ck.get_spec("gru_text").config
    assert AudioCNNConfig().to_dict() == ck.get_spec("audio_cnn_sound").config
    assert AudioCNNConfig().channels == (16, 32, 64)
    assert AudioCNNConfig().to_dict()["channels"] == [16, 32, 64]
    # the ResNet has none of the SmallCNN's fields, and its dict leaves them out
    resnet = VisualCNNConfig.from_dict(ck.get_spec("visual_resnet18_w16").config)
    assert resnet.embed_dim is None and not resnet.is_small_cnn
    assert "embed_dim" not in resnet.to_dict()
    assert VisualCNNConfig.from_dict(ck.get_spec("visual_small_cnn").config).is_small_cnn


@pytest.mark.parametrize("cls, changes, message", [
    (VisualCNNConfig, {"width": 0}, "VisualCNNConfig: width must be a positive integer, got 0"),
    (VisualCNNConfig, {"world_seed": 0}, "world_seed 0 is the evaluation world's"),
    (VisualCNNConfig, {"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1.0"),
    (VisualCNNConfig, {"embed_dim": 128}, "the SmallCNN's fields come together: embed_dim "
                                          "given but not se, cbam, vit, heads"),
    (VisualCNNConfig, {"embed_dim": 128, "se": True, "cbam": True, "vit": True, "heads": 5},
     "heads 5 must divide the ViT block's width 4 x width = 96"),
    (Word2VecConfig, {"window": 0}, "Word2VecConfig: window must be a positive integer"),
    (Word2VecConfig, {"val_world": {"n": 500, "seed": 0}},
     "val_world: seed 0 is the evaluation world's"),
    (Word2VecConfig, {"subsample": -1e-3}, "subsample must be > 0"),
    (SentenceEncoderConfig, {"bidirectional": "yes"},
     "SentenceEncoderConfig: bidirectional must be True or False, got 'yes'"),
    (SentenceEncoderConfig, {"temperature": 0}, "temperature must be > 0, got 0"),
    (SentenceEncoderConfig, {"batch_size": 300, "world": {"n": 200, "seed": 1201}},
     "batch_size 300 exceeds the training world's 200 images"),
    (AudioCNNConfig, {"channels": [16, 32]}, "AudioCNNConfig: channels must list 3 numbers"),
    (AudioCNNConfig, {"hop_length": 2.5}, "hop_length must be a positive integer, got 2.5"),
    (AudioCNNConfig, {"lr": float("nan")}, "lr must be"),
])
def test_bad_feature_values(cls, changes, message):
    with pytest.raises(InputError) as exc:
        cls.from_dict(changes)
    assert message in one_line(exc), (message, str(exc.value))


def test_bad_feature_values_are_refused_before_training():
    """The trainers and builders read the dataclass first: a bad or unknown key is one line,
    before any world is generated."""
    for name, changes in [("word2vec_world", {"dimension": 3}), ("gru_text", {"steps": 0}),
                          ("audio_cnn_sound", {"world_seed": 0}),
                          ("visual_small_cnn", {"epochs": -1})]:
        spec = ck.get_spec(name)
        with pytest.raises(InputError) as exc:
            spec.train({**spec.config, **changes}, False)
        one_line(exc)
    spec = ck.get_spec("visual_resnet18_w16")
    small = ck.get_spec("visual_small_cnn").config
    with pytest.raises(InputError, match="a NarrowResNet18 has no embed_dim"):
        spec.build(small)
    with pytest.raises(InputError, match="a SmallCNN needs embed_dim"):
        ck.get_spec("visual_small_cnn").build(spec.config)
