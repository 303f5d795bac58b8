"""CNN encoders, the pretrained EfficientNet-Lite0 and its name mapping, attention modules,
saliency (Grad-CAM against pytorch-grad-cam) and the visual checkpoints."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmkit import checkpoints
from mmkit.errors import InputError
from mmkit.features import visual_cnn as V


def _similarity_target_class():
    """pytorch-grad-cam's similarity target. Older releases shipped it in
    ``utils.model_targets``; 1.5.x only has it in the "Pixel Attribution for embeddings"
    tutorial, whose definition this is."""
    try:
        from pytorch_grad_cam.utils.model_targets import SimilarityToConceptTarget
        return SimilarityToConceptTarget
    except ImportError:
        class SimilarityToConceptTarget:
            def __init__(self, features):
                self.features = features

            def __call__(self, model_output):
                cos = torch.nn.CosineSimilarity(dim=0)
                return cos(model_output, self.features)

        return SimilarityToConceptTarget


@pytest.fixture(scope="module")
def lite0():
    return V.efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def source_state():
    return torch.load(V.efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ pretrained backbone
def test_name_mapping_uses_every_tensor_once_with_equal_shapes(lite0, source_state):
    target = lite0.state_dict()
    names = V.efficientnet_pytorch_to_timm(list(source_state), lite0)
    assert len(source_state) == len(names) == len(target) == 296
    assert sorted(names.values()) == sorted(target)          # every timm tensor, once
    assert len(set(names.values())) == len(names)
    for src, dst in names.items():
        assert tuple(source_state[src].shape) == tuple(target[dst].shape), (src, dst)
        assert torch.equal(source_state[src], target[dst]), (src, dst)  # and it was loaded


def test_name_mapping_is_by_name_not_position(lite0, source_state):
    names = V.efficientnet_pytorch_to_timm(list(source_state), lite0)
    assert names["_conv_stem.weight"] == "conv_stem.weight"
    assert names["_bn0.running_var"] == "bn1.running_var"
    assert names["_bn1.weight"] == "bn2.weight"                    # the head's batch norm
    assert names["_fc.bias"] == "classifier.bias"
    assert names["_blocks.0._project_conv.weight"] == "blocks.0.0.conv_pw.weight"
    assert names["_blocks.1._expand_conv.weight"] == "blocks.1.0.conv_pw.weight"
    assert names["_blocks.1._project_conv.weight"] == "blocks.1.0.conv_pwl.weight"
    assert names["_blocks.2._bn2.bias"] == "blocks.1.1.bn3.bias"
    assert names["_blocks.15._depthwise_conv.weight"] == "blocks.6.0.conv_dw.weight"
    shuffled = list(source_state)
    random.Random(0).shuffle(shuffled)
    assert V.efficientnet_pytorch_to_timm(shuffled, lite0) == names
    for bad in ("_blocks.3._mystery.weight", "_head.weight", "_blocks.99._bn0.weight"):
        with pytest.raises(InputError, match="EfficientNet weights"):
            V.efficientnet_pytorch_to_timm([bad], lite0)


@pytest.mark.parametrize("photo, wanted", [
    ("chelsea", V.CATS), ("coffee", (V.ESPRESSO,)), ("rocket", (V.MISSILE, V.PROJECTILE))])
def test_pretrained_classifies_real_photographs(lite0, photo, wanted):
    from skimage import data

    x = V.imagenet_tensor(getattr(data, photo)())
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        top5 = lite0(x)[0].topk(5).indices.tolist()
    assert set(top5) & set(wanted), (photo, top5, [V.imagenet_label(i) for i in top5])


def test_features_only_mode_is_the_pooled_pre_logits(lite0):
    x = torch.randn(2, 3, 96, 96)
    feats = V.efficientnet_lite0(pretrained=True, features_only=True)
    with torch.no_grad():
        got = feats(x)
        ref = lite0.forward_head(lite0.forward_features(x), pre_logits=True)
        assert got.shape == (2, 1280)
        assert torch.allclose(got, ref, atol=1e-5)
        assert torch.allclose(lite0.classifier(got), lite0(x), atol=1e-4)
    enc = V.PretrainedEncoder(input_size=96)
    assert enc.out_dim == 1280 and not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.backbone.training                      # frozen batch norm stays in eval


def test_imagenet_labels_are_offline():
    assert V.imagenet_label(285) == "Egyptian cat"
    assert V.imagenet_label(967) == "espresso"
    for index, name in V.IMAGENET_CLASSES.items():
        assert name.split()[0].lower() in V.imagenet_label(index).lower()


# ------------------------------------------------------------------ encoders and preprocessing
def test_narrow_resnet_is_torchvision_resnet18_at_width_64():
    from torchvision.models import resnet18

    ours = V.NarrowResNet18(width=64, n_classes=10).net.state_dict()
    ref = resnet18(num_classes=10).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    small = V.NarrowResNet18(width=16)
    assert small.out_dim == 128
    n = sum(p.numel() for p in small.parameters())
    assert 0.5e6 < n < 1e6                              # a 2.8 MB checkpoint in float32


def test_images_to_tensor_normalises_and_resizes():
    img = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = V.images_to_tensor(img)
    manual = (img / 255.0 - np.array(V.IMAGENET_MEAN)) / np.array(V.IMAGENET_STD)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32 and x.is_contiguous()
    assert np.allclose(x.permute(0, 2, 3, 1).numpy(), manual, atol=1e-5)
    assert V.images_to_tensor(img, size=16).shape == (2, 3, 16, 16)
    assert V.imagenet_tensor(np.zeros((300, 400, 3), np.uint8), size=64).shape == (1, 3, 64, 64)


def test_embed_images_batches_converts_and_refuses_bad_input():
    torch.manual_seed(0)
    model = V.SmallCNN(width=8, embed_dim=16).eval()
    img = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    a = V.embed_images(model, img, batch_size=2, progress=False)
    b = V.embed_images(model, img, batch_size=64, progress=False)
    assert a.shape == (5, model.out_dim) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-5)
    grey = img[..., :1]
    assert np.allclose(V.embed_images(model, grey, progress=False),
                       V.embed_images(model, np.repeat(grey, 3, -1), progress=False))
    assert np.allclose(V.embed_images(model, img.astype(np.uint16) * 257, progress=False), a,
                       atol=1e-5)
    n = V.embed_images(model, img, progress=False, normalize=True)
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="batch_size"):
            V.embed_images(model, img, batch_size=bad)
    with pytest.raises(InputError, match="channels-first"):
        V.embed_images(model, img.transpose(0, 3, 1, 2))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        V.embed_images(model, img.astype(np.float32))


# ------------------------------------------------------------------ attention
def test_squeeze_excite_matches_the_formula():
    torch.manual_seed(0)
    se = V.SqueezeExcite(16, reduction=4)
    x = torch.randn(3, 16, 5, 5)
    squeezed = x.mean((2, 3))
    w = torch.sigmoid(se.fc2.weight @ torch.relu(se.fc1.weight @ squeezed.T + se.fc1.bias[:, None])
                      + se.fc2.bias[:, None]).T
    assert torch.allclose(se(x), x * w[:, :, None, None], atol=1e-6)
    assert torch.allclose(se.last_weights, w, atol=1e-6)


def test_cbam_maps_and_shapes():
    torch.manual_seed(0)
    cbam = V.CBAM(16, reduction=4)
    x = torch.randn(2, 16, 6, 6)
    y = cbam(x)
    assert y.shape == x.shape
    s, c = cbam.last_spatial, cbam.last_channel
    assert s.shape == (2, 6, 6) and c.shape == (2, 16)
    assert ((s > 0) & (s < 1)).all() and ((c > 0) & (c < 1)).all()
    assert torch.allclose(y, x * c[:, :, None, None] * s[:, None], atol=1e-6)


def test_vit_block_attention_is_softmax_of_scaled_dot_products():
    torch.manual_seed(0)
    block = V.ViTBlock(8, grid=3, heads=2).eval()
    x = torch.randn(2, 8, 3, 3)
    out = block(x)
    assert out.shape == (2, 10, 8)
    tokens = torch.cat([block.cls.expand(2, -1, -1), x.flatten(2).transpose(1, 2)], 1) + block.pos
    h = block.norm1(tokens)
    q, k, _ = F.linear(h, block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, -1)
    heads = [torch.softmax(q[..., i * 4:(i + 1) * 4] @ k[..., i * 4:(i + 1) * 4].transpose(1, 2)
                           / 2.0, -1) for i in range(2)]
    assert torch.allclose(block.last_attention, sum(heads) / 2, atol=1e-5)
    assert torch.allclose(block.last_attention.sum(-1), torch.ones(2, 10), atol=1e-5)
    assert block.cls_attention_map().shape == (2, 3, 3)


# ------------------------------------------------------------------ saliency
def _tiny_models():
    torch.manual_seed(0)
    return [(V.SmallCNN(width=8, embed_dim=16).eval(), 64),
            (V.NarrowResNet18(width=8).eval(), 64)]


@pytest.mark.slow
def test_grad_cam_matches_pytorch_grad_cam_with_similarity_target():
    from pytorch_grad_cam import GradCAM

    target_cls = _similarity_target_class()
    for model, size in _tiny_models():
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(3, 3, size, size, generator=gen)
        with torch.no_grad():
            query = model(torch.randn(1, 3, size, size, generator=gen))[0]
        ours = V.similarity_grad_cam(model, x, query)
        with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
            ref = cam(input_tensor=x, targets=[target_cls(query)] * 3)
        assert ours.shape == ref.shape == (3, size, size)
        assert np.abs(ours - ref).max() < 1e-5, type(model).__name__
        assert ours.min() >= 0 and ours.max() <= 1 + 1e-6


def test_grad_cam_on_the_pretrained_backbone_matches_too():
    from pytorch_grad_cam import GradCAM

    target_cls = _similarity_target_class()
    enc = V.PretrainedEncoder(input_size=64)
    x = enc.preprocess(np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        query = enc(x[:1])[0]
    ours = V.similarity_grad_cam(enc, x, query)
    # frozen weights: the reference needs an input that requires grad to build a graph at all
    with GradCAM(model=enc, target_layers=[enc.cam_layer]) as cam:
        ref = cam(input_tensor=x.clone().requires_grad_(True), targets=[target_cls(query)] * 2)
    assert np.abs(ours - ref).max() < 1e-5


def test_raw_grad_cam_and_input_gradients_against_finite_differences():
    model = V.SmallCNN(width=4, embed_dim=8, vit=False).double().eval()
    torch.manual_seed(3)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    query = torch.randn(8, dtype=torch.float64)
    target = V.cosine_target(query)
    sal = V.input_gradients(model, x, target)
    assert sal.shape == (1, 64, 64)
    eps = 1e-6
    for (i, j) in ((10, 20), (33, 41)):
        grads = []
        for c in range(3):
            hi, lo = x.clone(), x.clone()
            hi[0, c, i, j] += eps
            lo[0, c, i, j] -= eps
            with torch.no_grad():
                grads.append(float((target(model(hi)) - target(model(lo))) / (2 * eps)))
        assert abs(sal[0, i, j] - max(abs(g) for g in grads)) < 1e-5 * max(1, sal.max())
    raw = V.grad_cam(model, model.cam_layer, x, target, normalise=False)
    assert raw.shape == (1, 8, 8) and (raw >= 0).all()
    with pytest.raises(InputError, match=r"\[N, 3, H, W\]"):
        V.grad_cam(model, model.cam_layer, x[0], target)


# ------------------------------------------------------------------ checkpoints
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(V.CHECKPOINTS))
def test_training_a_few_steps_lowers_the_loss_and_round_trips(name, tmp_path):
    spec = V.CHECKPOINTS[name]
    config = {**spec.config, "n_train": 96, "n_val": 24, "epochs": 4, "batch_size": 32,
              "lr": 3e-3}
    torch.manual_seed(0)
    trained = spec.train(config, False)
    m = trained.metrics
    assert m["loss_last_epoch"] < m["loss_first_epoch"]
    assert 0 <= m["heldout_accuracy"] <= 1 and 0 < m["heldout_image_map"] <= 1
    assert trained.data["world"]["seed"] != 0 and trained.data["heldout_world"]["seed"] != 0
    checkpoints.save(trained, spec, config, tmp_path, 1.0, 0)
    model, manifest = checkpoints.read(spec, tmp_path, config)
    for k, v in trained.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert manifest["metrics"] == m


@pytest.mark.parametrize("name", sorted(V.CHECKPOINTS))
def test_committed_checkpoint_loads_and_is_small(name):
    spec = V.CHECKPOINTS[name]
    model, manifest = checkpoints.read(spec, checkpoints.PACKAGE_DIR)
    assert manifest["bytes"] < 4_000_000
    assert manifest["training_data"]["world"]["seed"] != 0
    img = np.zeros((2, 64, 64, 3), np.uint8)
    assert V.embed_images(model, img, progress=False).shape == (2, model.out_dim)
