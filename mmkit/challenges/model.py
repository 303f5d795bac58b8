"""The small image encoder the challenges train: four conv stages, global average pooling, a
projection into the retrieval space, and the heads the challenges switch on.

``x`` uint8 [N, H, W, 3] -> :meth:`ChallengeNet.features` [N, F] (F = 4 x width) ->

- :meth:`ChallengeNet.forward`: the L2-normalised retrieval embedding [N, dim] (with
  ``embed_attributes > 0``: the projection and the predicted probabilities of the class
  attributes (shape, colour, texture; :data:`CLASS_ATTRIBUTES` columns) scaled by it,
  concatenated, then normalised: an attribute-aware embedding [N, dim + 22]);
- ``proxies`` [C, dim]: one learned vector per class for the normalised-softmax retrieval
  loss (cosine logits, as a classifier whose weights are unit vectors);
- ``class_head`` [F -> C], ``attribute_head`` [F -> A]: the auxiliary tasks of multi-task
  learning;
- ``style_head`` [F -> 3]: the style discriminator that sits behind a gradient reversal
  layer in domain-adversarial training.

Every head is built whether or not a config uses it (an unused head keeps its
initialisation), so one architecture and one checkpoint format serve every challenge.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmkit.data import vocab as V
from mmkit.data.images import check_images

N_CLASSES = V.N_CLASSES
#: one-hot attribute columns of the main object (``World.attributes``)
N_ATTRIBUTES = sum(len(V.ATTRIBUTE_VALUES[a]) for a in V.ATTRIBUTES)
#: the columns that define a class (shape, colour, texture: the first 22); size and position
#: say nothing about the class, so the attribute-aware embedding leaves them out
CLASS_ATTRIBUTES = sum(len(V.ATTRIBUTE_VALUES[a]) for a in ("shape", "colour", "texture"))
N_STYLES = len(V.STYLES)


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ChallengeNet(nn.Module):
    """A 4-stage CNN (64 px -> 8 x 8 cells) with a retrieval projection and auxiliary heads.

    Args:
        width: channels of the first stage (then 2x, 4x, 4x).
        dim: retrieval embedding size.
        embed_attributes: weight of the predicted attribute probabilities appended to the
            embedding (0: the plain projection).
    """

    def __init__(self, width: int = 32, dim: int = 128, embed_attributes: float = 0.0) -> None:
        super().__init__()
        self.width, self.dim = int(width), int(dim)
        self.embed_attributes = float(embed_attributes)
        w = self.width
        self.backbone = nn.Sequential(_stage(3, w, 2), _stage(w, 2 * w, 2),
                                      _stage(2 * w, 4 * w, 2), _stage(4 * w, 4 * w, 1))
        feat = 4 * w
        self.project = nn.Linear(feat, dim)
        self.proxies = nn.Parameter(torch.randn(N_CLASSES, dim) / dim ** 0.5)
        self.class_head = nn.Linear(feat, N_CLASSES)
        self.attribute_head = nn.Linear(feat, N_ATTRIBUTES)
        self.style_head = nn.Sequential(nn.Linear(feat, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, N_STYLES))
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))

    @property
    def cam_layer(self) -> nn.Module:
        """The last conv stage (for Grad-CAM)."""
        return self.backbone[-1]

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> normalised float [N, 3, H, W] on the model's device."""
        x = torch.as_tensor(np.ascontiguousarray(images), device=self.mean.device)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images [N, 3, H, W] -> pooled features [N, 4 x width]."""
        return self.backbone(x).mean(dim=(2, 3))

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, F] -> unit-length retrieval embedding [N, dim] (or
        [N, dim + CLASS_ATTRIBUTES] with ``embed_attributes``)."""
        z = F.normalize(self.project(feats), dim=1)
        if self.embed_attributes > 0:
            attrs = torch.sigmoid(self.attribute_head(feats)[:, :CLASS_ATTRIBUTES])
            z = torch.cat([z, self.embed_attributes * F.normalize(attrs, dim=1)], dim=1)
            z = F.normalize(z, dim=1)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(x))

    @torch.no_grad()
    def embed_images(self, images: np.ndarray, *, batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, D] unit-length embeddings (eval mode)."""
        images = check_images(images, name="ChallengeNet images")
        was = self.training
        self.eval()
        out = [self(self.to_tensor(images[i:i + batch_size])).cpu().numpy()
               for i in range(0, len(images), batch_size)]
        self.train(was)
        return np.concatenate(out).astype(np.float32) if out else \
            np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def predict(self, images: np.ndarray, head: str = "class", *,
                batch_size: int = 256) -> np.ndarray:
        """Logits of a head (``"class"``, ``"attribute"``, ``"style"``, or ``"proxy"``: the
        cosines to the class proxies) for uint8 [N, H, W, 3]: float32 [N, outputs]."""
        images = check_images(images, name="ChallengeNet images")
        was = self.training
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            f = self.features(self.to_tensor(images[i:i + batch_size]))
            if head == "proxy":
                y = F.normalize(self.project(f), dim=1) @ F.normalize(self.proxies, dim=1).T
            else:
                y = {"class": self.class_head, "attribute": self.attribute_head,
                     "style": self.style_head}[head](f)
            out.append(y.cpu().numpy())
        self.train(was)
        return np.concatenate(out).astype(np.float32)
