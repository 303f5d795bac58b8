"""One ``embed_images`` signature: every encoder and method is an ``Encoder``
(``mmkit.encoders.base``), every ``embed_images`` defined in mmkit takes ``images`` then the
keyword-only ``batch_size`` and ``progress`` (a method's ``partner`` is keyword-only too), and
the keywords do what they say: a method passes them to its model, a batch size changes no
number."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mmkit  # noqa: E402
from mmkit.data import World  # noqa: E402
from mmkit.encoders.base import (EMBED_IMAGES_PARAMETERS, AudioEncoder, Encoder,  # noqa: E402
                                 ImageEmbedder)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(mmkit.__file__).parent
#: the function form's own keywords after the shared ones (mmkit.features.image_encoder)
FUNCTION_EXTRAS = ("device", "normalize", "desc")


def every_embed_images() -> list[tuple[str, object]]:
    """(where, callable) for every ``def embed_images`` in the package, found in the source
    (so a new one cannot be missed) and looked up on its imported module or class."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "embed_images":
                found.append((module, getattr(importlib.import_module(module), node.name)))
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "embed_images":
                        cls = getattr(importlib.import_module(module), node.name)
                        found.append((f"{module}.{node.name}", cls.embed_images))
    return found


def test_every_embed_images_has_the_one_signature():
    found = every_embed_images()
    where = {w for w, _ in found}
    assert {"mmkit.encoders.joint.JointModel", "mmkit.encoders.clip.modeling.ClipStyle",
            "mmkit.methods.base.RetrievalMethod", "mmkit.methods.joint.JointMethod",
            "mmkit.methods.baseline.BaselineMethod", "mmkit.encoders.base.ImageEmbedder"} <= where
    kw = inspect.Parameter.KEYWORD_ONLY
    for name, fn in found:
        params = list(inspect.signature(fn).parameters.values())
        first = params.pop(0).name
        assert first in ("self", "model"), name
        partner = [p for p in params if p.name == "partner"]
        if partner:       # a method: the space the images land in, keyword-only, "text" default
            assert partner[0].kind is kw and partner[0].default == "text", name
            params.remove(partner[0])
        shared, extra = params[:3], params[3:]
        assert tuple(p.name for p in shared) == EMBED_IMAGES_PARAMETERS, name
        assert shared[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        assert all(p.kind is kw and p.default is not inspect.Parameter.empty
                   for p in shared[1:] + extra), name
        # only the function form (the module instead of self) has keywords of its own
        assert tuple(p.name for p in extra) == (FUNCTION_EXTRAS if first == "model" else ()), name


@pytest.fixture(scope="module")
def world():
    return World(n=60, seed=4)


@pytest.fixture(scope="module")
def joint_model():
    from mmkit.encoders.joint_training import BASE_CONFIG, build_joint

    torch.manual_seed(0)
    return build_joint({**BASE_CONFIG, "dim": 16, "width": 8, "hidden": 16,
                        "word_dim": 8}).eval()


@pytest.fixture(scope="module")
def clip_style(world):
    from mmkit.encoders import hf_clip as H

    tok = H.train_caption_tokenizer(world.captions, vocab_size=300, max_length=48)
    torch.manual_seed(0)
    config = H.small_clip_config(tok, image_size=32, patch_size=8, hidden=32, layers=1,
                                 heads=2, projection_dim=16)
    return H.ClipStyle(H.build_clip(config), tok, tokenizer_bytes=32768).eval()


@pytest.fixture(scope="module")
def flickr(world, tmp_path_factory):
    """The world's images and captions as a Flickr8K folder, read back: a dataset with text
    and images only (no sound clips, no labels)."""
    from test_datasets_fixtures import build_flickr8k

    from mmkit.data.flickr import load_flickr8k

    return load_flickr8k(build_flickr8k(tmp_path_factory.mktemp("flickr8k"), world))


@pytest.fixture(scope="module")
def baseline(flickr):
    """The baseline fitted on a dataset (a Collection other than the world)."""
    from mmkit.methods.baseline import BaselineMethod

    return BaselineMethod(text_dims=6, pca_dims=16, progress=False).fit(
        flickr, flickr.indices("train"))


def test_encoders_and_methods_are_encoders(joint_model, clip_style, baseline):
    from mmkit.methods.clip import ClipMethod
    from mmkit.methods.joint import JointMethod

    for x in (joint_model, clip_style, baseline, JointMethod(progress=False),
              ClipMethod(progress=False)):
        assert isinstance(x, Encoder) and isinstance(x, ImageEmbedder), type(x).__name__
    for x in (joint_model, baseline, JointMethod(progress=False)):   # a method always is one
        assert isinstance(x, AudioEncoder), type(x).__name__
    assert not isinstance(clip_style, AudioEncoder)        # CLIP has no sound tower
    assert not isinstance(np.zeros(3), ImageEmbedder)


@pytest.mark.parametrize("which", ["joint_model", "clip_style"])
def test_batch_size_changes_no_number(request, world, which):
    encoder = request.getfixturevalue(which)
    x = world.images[:7]
    whole = encoder.embed_images(x)
    assert whole.dtype == np.float32 and whole.shape[0] == 7
    assert np.allclose(np.linalg.norm(whole, axis=1), 1, atol=1e-5)
    assert np.allclose(encoder.embed_images(x, batch_size=2, progress=False), whole, atol=1e-5)
    with pytest.raises(TypeError):
        encoder.embed_images(x, 2)                          # keyword-only


def test_a_method_passes_the_keywords_to_its_model(world, joint_model):
    from mmkit.methods.joint import JointMethod

    method = JointMethod(progress=False)
    method._model = joint_model       # the tiny model instead of the committed checkpoint
    x = world.images[:5]
    expect = joint_model.embed_images(x)
    for partner in ("text", "audio", "image"):      # one joint space: partner changes nothing
        got = method.embed_images(x, partner=partner, batch_size=2)
        assert np.allclose(got, expect, atol=1e-5)


def test_partner_is_keyword_only_and_defaults_to_text(flickr, baseline):
    assert baseline.directions == ("text->image", "image->text", "image->image")
    x = flickr.images[flickr.indices("test")]
    text_space = baseline.embed_images(x, partner="text")
    assert text_space.shape == (len(x), 6)
    assert np.array_equal(baseline.embed_images(x), text_space)
    assert np.array_equal(baseline.embed_images(x, batch_size=1, progress=False), text_space)
    with pytest.raises(ValueError, match="'audio'"):    # fitted without sound clips
        baseline.embed_images(x, partner="audio")
    with pytest.raises(TypeError):
        baseline.embed_images(x, "text")
