"""Draw a world scene as an RGB image (numpy + Pillow, deterministic for a given seed).

The scene is drawn at twice the output size and box-filtered down (anti-aliasing). Three
styles give three visual domains for cross-domain retrieval: a shaded, noisy "photo", a line
"sketch" on paper and a flat "painting" with outlines.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmkit.data import vocab as V

_SUPER = 2  # supersampling factor


def shape_polygon(shape: int, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    """Vertices of a shape of "radius" ``r`` centred at (cx, cy), rotated by ``rot`` radians."""
    name = V.SHAPES[shape]
    if name == "circle":
        pts = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)]
    elif name == "square":
        pts = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif name == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif name == "diamond":
        pts = [(0, -1.0), (0.72, 0), (0, 1.0), (-0.72, 0)]
    elif name == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rad = 1.0 if k % 2 == 0 else 0.45
            pts.append((rad * math.cos(a), rad * math.sin(a)))
    elif name == "cross":
        w = 0.33
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w),
               (-1, w), (-1, -w), (-w, -w)]
    elif name in ("pentagon", "hexagon"):
        n = 5 if name == "pentagon" else 6
        pts = [(math.cos(-math.pi / 2 + 2 * math.pi * k / n), math.sin(-math.pi / 2 + 2 * math.pi * k / n))
               for k in range(n)]
    else:  # pragma: no cover - SHAPES is fixed
        raise ValueError(f"unknown shape {name!r}")
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _pattern(texture: int, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float,
             rot: float) -> np.ndarray:
    """Boolean mask of the texture's secondary colour (False everywhere for "plain")."""
    name = V.TEXTURES[texture]
    if name == "plain":
        return np.zeros(xx.shape, dtype=bool)
    c, s = math.cos(rot), math.sin(rot)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    if name == "striped":
        period = 0.55 * r
        return ((u + v) / period) % 1.0 < 0.5
    if name == "checkered":
        cell = 0.5 * r
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    # dotted
    spacing = 0.55 * r
    du = (u / spacing) % 1.0 - 0.5
    dv = (v / spacing) % 1.0 - 0.5
    return du * du + dv * dv < 0.28 ** 2


def _second_colour(rgb: np.ndarray) -> np.ndarray:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return rgb * 0.45 if lum > 150 else rgb + (255 - rgb) * 0.6


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _poly_mask(size: int, poly: list[tuple[float, float]], outline: int = 0) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    if outline:
        draw.line(poly + [poly[0]], fill=255, width=outline, joint="curve")
    else:
        draw.polygon(poly, fill=255)
    return np.asarray(img) > 127


def render_scene(objects: np.ndarray, xy: np.ndarray, rot: np.ndarray, tint: np.ndarray,
                 n_objects: int, style: int, word: int, word_x: float, background: np.ndarray,
                 image_size: int, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Draw one scene.

    Args:
        objects: int [K, 5] attribute ids (shape, colour, texture, size, hpos), row 0 = main.
        xy: float [K, 2] centres in [0, 1]; rot: float [K] radians; tint: float [K, 3]
            per-object colour jitter (added to the RGB); n_objects: real rows of ``objects``.
        style: index into STYLES; word: index into SIGN_WORDS or -1; word_x: sign position [0,1].
        background: float [2, 3] two background RGB colours.
        rng: randomness for the pixel noise. noise: noise scale (0 = clean).

    Returns:
        uint8 [image_size, image_size, 3].
    """
    S = image_size * _SUPER
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    style_name = V.STYLES[style]
    bg0, bg1 = background[0], background[1]
    if style_name == "photo":
        t = (yy / S)[..., None]
        canvas = bg0 * (1 - t) + bg1 * t
        # soft low-frequency blotches
        freq, phase = rng.uniform(1, 3, 2), rng.uniform(0, 2 * math.pi, 2)
        blotch = (np.sin(xx / S * freq[0] * 2 * math.pi + phase[0])
                  * np.sin(yy / S * freq[1] * 2 * math.pi + phase[1]))
        canvas = canvas + 18 * blotch[..., None]
    elif style_name == "painting":
        canvas = np.broadcast_to(bg0, (S, S, 3)).astype(np.float32).copy()
    else:  # sketch: paper
        paper = 238 + 10 * rng.random()
        canvas = np.empty((S, S, 3), np.float32)
        canvas[...] = (paper, paper, paper - 12)

    for k in range(n_objects):
        shape, colour, texture, size, _ = (int(v) for v in objects[k])
        cx, cy = float(xy[k, 0]) * S, float(xy[k, 1]) * S
        r = V.SIZE_RADIUS[size] * S
        poly = shape_polygon(shape, cx, cy, r, float(rot[k]))
        rgb = np.clip(np.array(V.COLOUR_RGB[V.COLOURS[colour]], np.float32) + tint[k], 0, 255)
        rgb2 = _second_colour(rgb)
        pattern = _pattern(texture, xx, yy, cx, cy, r, float(rot[k]))
        if style_name == "sketch":
            stroke = _poly_mask(S, poly, outline=max(2, S // 48))
            inner = _poly_mask(S, poly) & pattern
            canvas[inner] = canvas[inner] * 0.35 + rgb * 0.65
            canvas[stroke] = rgb * 0.8
            continue
        mask = _poly_mask(S, poly)
        fill = np.where(pattern[..., None], rgb2, rgb)
        if style_name == "photo":
            shadow = _poly_mask(S, shape_polygon(shape, cx + 0.12 * r, cy + 0.12 * r, r, float(rot[k])))
            canvas[shadow & ~mask] *= 0.6
            shade = 1.12 - 0.28 * ((xx - cx) + (yy - cy)) / (2 * r)
            fill = fill * np.clip(shade, 0.7, 1.25)[..., None]
        canvas[mask] = fill[mask]
        if style_name == "painting":
            canvas[_poly_mask(S, poly, outline=max(2, S // 40))] = (25, 25, 25)

    if word >= 0:
        _draw_sign(canvas, V.SIGN_WORDS[word], word_x, style_name, S)

    sigma = {"photo": 9.0, "painting": 3.0, "sketch": 4.0}[style_name] * noise
    if sigma > 0:
        canvas = canvas + rng.normal(0, sigma, canvas.shape).astype(np.float32)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((image_size, image_size), Image.BOX))


def _draw_sign(canvas: np.ndarray, text: str, x: float, style_name: str, S: int) -> None:
    """A board with a word on it, in the bottom strip of the image (in place)."""
    font = _font(max(8, int(S * 0.17)))
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    label = text.upper()
    x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
    w, h = x1 - x0 + int(S * 0.08), y1 - y0 + int(S * 0.06)
    left = int(x * max(1, S - w - 2)) + 1
    top = S - h - int(S * 0.03)
    board = {"photo": (245, 245, 240), "painting": (250, 225, 90), "sketch": None}[style_name]
    draw.rectangle((left, top, left + w, top + h), fill=board, outline=(30, 30, 30),
                   width=max(1, S // 64))
    draw.text((left + (w - (x1 - x0)) // 2 - x0, top + (h - (y1 - y0)) // 2 - y0), label,
              fill=(20, 20, 20), font=font)
    canvas[...] = np.asarray(img, dtype=np.float32)
