"""Figures: image grids, spectrograms and retrieval galleries (matplotlib, Agg-safe)."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmkit._io import atomic_path

#: border colours of gallery results
HIT, RELEVANT, MISS = "#1a9850", "#fdae61", "#d73027"


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            import IPython  # noqa: F401

            if IPython.get_ipython() is None:  # plain script: never open a window
                matplotlib.use("Agg")
        except ImportError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show_images(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
                size: float = 1.6, title_size: int = 7):
    """Grid of uint8 [N, H, W, 3] images with optional titles; returns the figure."""
    plt = _plt()
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], interpolation="nearest")
            if titles is not None:
                ax.set_title("\n".join(textwrap.wrap(titles[k], 22)), fontsize=title_size)
    fig.tight_layout()
    return fig


def spectrogram(ax, clip: np.ndarray, sr: int, n_mels: int = 64, title: str | None = None):
    """Log-mel spectrogram of a clip drawn on ``ax`` (librosa.display)."""
    import librosa
    import librosa.display

    mel = librosa.feature.melspectrogram(y=np.asarray(clip, np.float32), sr=sr, n_mels=n_mels,
                                         n_fft=512, hop_length=128)
    img = librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=sr, hop_length=128,
                                   x_axis="time", y_axis="mel", ax=ax, cmap="magma")
    if title:
        ax.set_title(title, fontsize=8)
    return img


def _frame(ax, colour: str) -> None:
    for side in ax.spines.values():
        side.set_visible(True)
        side.set_color(colour)
        side.set_linewidth(4)
    ax.set_xticks([])
    ax.set_yticks([])


def gallery(rows: Sequence[dict], k: int = 5, size: float = 1.5):
    """One row per query: the query, then its top-``k`` results framed by outcome.

    Each row is a dict with ``direction``, ``query`` (an image array, a caption string or a
    ``(clip, sr)`` pair), ``results`` (``k`` images or strings) and ``outcome`` (per result:
    ``"hit"`` = a positive, ``"relevant"`` = fits the query fully but is not its pair,
    ``"miss"``); a row may have fewer than ``k`` results. Returns the figure.
    """
    plt = _plt()
    fig, axes = plt.subplots(len(rows), k + 1, figsize=((k + 1) * size * 1.25, len(rows) * size),
                             squeeze=False)
    colours = {"hit": HIT, "relevant": RELEVANT, "miss": MISS}
    for r, row in enumerate(rows):
        ax = axes[r, 0]
        query = row["query"]
        if isinstance(query, str):
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(query, 24)), ha="center", va="center",
                    fontsize=7, wrap=True)
            ax.set_xticks([])
            ax.set_yticks([])
        elif isinstance(query, tuple):
            spectrogram(ax, query[0], query[1])
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.imshow(query, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"{row['direction']}\nquery", fontsize=8)
        for c in range(k):
            ax = axes[r, c + 1]
            if c >= len(row["results"]):  # a gallery smaller than k
                ax.axis("off")
                continue
            res = row["results"][c]
            if isinstance(res, str):
                ax.text(0.5, 0.5, "\n".join(textwrap.wrap(res, 24)), ha="center", va="center",
                        fontsize=6)
            else:
                ax.imshow(res, interpolation="nearest")
            _frame(ax, colours[row["outcome"][c]])
            ax.set_title(f"#{c + 1}", fontsize=8)
    handles = [plt.Line2D([], [], color=colours[o], lw=4, label=lab) for o, lab in
               (("hit", "positive (pair / same class)"), ("relevant", "fits the query fully"),
                ("miss", "not relevant"))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` atomically (PNG unless the suffix says otherwise); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    return path
