"""The one image decoder, resize rule and pixel check (mmkit.data.images): a real file of each
kind, written by PIL, against PIL's own decoders, hand-computed values and CLIP's image
processor; bad files and bad arrays give one line."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from mmkit.data import images as I
from mmkit.data.dataset import RetrievalDataset
from mmkit.errors import InputError
from mmkit.scale import files as F

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
#: a smooth picture (JPEG keeps it close): red rises to the right, green downwards
YY, XX = np.mgrid[0:24, 0:40]
SMOOTH = np.dstack([XX * 6, YY * 10, np.full_like(XX, 90)]).astype(np.uint8)


def one_line(call, *words):
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def over_white(rgb, alpha):
    """Naive alpha compositing over white, pixel by pixel in float64."""
    out = np.empty(rgb.shape, np.float64)
    for idx in np.ndindex(*alpha.shape):
        a = alpha[idx] / 255.0
        out[idx] = rgb[idx] * a + 255.0 * (1.0 - a)
    return out


# ------------------------------------------------------------------ decoding, mode by mode
def test_8bit_rgb_png_and_jpeg_are_pils_pixels(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    Image.fromarray(SMOOTH).save(tmp_path / "a.jpg", quality=90)
    png = I.read_image(tmp_path / "a.png")
    assert png.dtype == np.uint8 and png.flags.writeable and np.array_equal(png, RGB)
    jpg = I.read_image(tmp_path / "a.jpg")
    assert np.array_equal(jpg, np.asarray(Image.open(tmp_path / "a.jpg")))
    assert np.abs(jpg.astype(int) - SMOOTH).mean() < 3          # lossy, but the same picture


def test_16bit_grey_png_is_scaled_not_saturated(tmp_path):
    values = np.array([[0, 128, 129, 257], [1000, 30000, 65278, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
        assert (np.asarray(im.convert("RGB")) == 255).sum() > 12   # PIL's own RGB saturates
    got = I.read_image(tmp_path / "g16.png")
    expect = np.round(values / 257.0).astype(np.uint8)          # 65535 -> 255, 257 -> 1
    assert got.shape == (2, 4, 3)
    assert np.array_equal(got[..., 0], expect) and np.array_equal(got[..., 2], expect)
    assert list(expect[1]) == [4, 117, 254, 255]


@pytest.mark.parametrize("dtype, mode", [(">u2", "I;16B"), (np.int32, "I")])
def test_16bit_tiff_big_endian_and_32bit_int_modes(tmp_path, dtype, mode):
    values = np.array([[0, 257, 65535, 30000]], np.uint16)
    Image.fromarray(values.astype(dtype)).save(tmp_path / "x.tif")
    with Image.open(tmp_path / "x.tif") as im:
        assert im.mode == mode
    assert list(I.read_image(tmp_path / "x.tif")[0, :, 1]) == [0, 1, 255, 117]
    Image.fromarray(values.astype(np.int32) - 5).save(tmp_path / "neg.tif")
    one_line(lambda: I.read_image(tmp_path / "neg.tif"), "neg.tif", "0..65535")


def test_float_tiff_in_0_1_is_scaled_and_out_of_range_refused(tmp_path):
    f = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    Image.fromarray(f).save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as im:
        assert im.mode == "F"
    got = I.read_image(tmp_path / "f.tif")
    assert np.array_equal(got[..., 1], np.rint(f.astype(np.float64) * 255).astype(np.uint8))
    Image.fromarray(f * 200).save(tmp_path / "f255.tif")
    one_line(lambda: I.read_image(tmp_path / "f255.tif"), "f255.tif", "[0, 1]")
    nan = f.copy()
    nan[0, 0] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    one_line(lambda: I.read_image(tmp_path / "nan.tif"), "nan.tif", "NaN")


def test_palette_png_with_and_without_transparency(tmp_path):
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    colours = [(200, 10, 20), (5, 250, 60), (30, 40, 190)]
    im = Image.fromarray(index, mode="P")
    im.putpalette([c for rgb in colours for c in rgb])
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "pt.png", transparency=1)
    with Image.open(tmp_path / "pt.png") as back:
        assert back.mode == "P" and back.info.get("transparency") == 1
    plain = I.read_image(tmp_path / "p.png")
    assert np.array_equal(plain, np.array(colours, np.uint8)[index])
    clear = I.read_image(tmp_path / "pt.png")
    expect = np.array(colours, np.uint8)[index]
    expect[index == 1] = 255                                    # transparent -> white
    assert np.array_equal(clear, expect)


def test_cmyk_jpeg_is_converted(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:8] = (0, 255, 255, 0)                                 # red
    cmyk[8:] = (0, 0, 0, 128)                                   # grey
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=100)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
    got = I.read_image(tmp_path / "c.jpg").astype(int)
    # R = (255 - C)(255 - K) / 255, etc.
    assert np.abs(got[2:6, 2:14] - [255, 0, 0]).max() <= 6
    assert np.abs(got[10:14, 2:14] - 127).max() <= 6


def test_1bit_and_grey_png(tmp_path):
    bits = RNG.integers(0, 2, (9, 7)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "1"
    got = I.read_image(tmp_path / "b.png")
    assert set(np.unique(got)) <= {0, 255}
    assert np.array_equal(got[..., 0] == 255, bits) and np.array_equal(got[..., 0], got[..., 2])
    grey = RGB[..., 0]
    Image.fromarray(grey).save(tmp_path / "l.png")
    assert np.array_equal(I.read_image(tmp_path / "l.png"), np.repeat(grey[..., None], 3, -1))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_over_white(tmp_path, mode):
    alpha = RNG.integers(0, 256, RGB.shape[:2], dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    colour = RGB if mode == "RGBA" else np.repeat(RGB[..., :1], 3, -1)
    pixels = (np.dstack([RGB, alpha]) if mode == "RGBA"
              else np.dstack([RGB[..., 0], alpha]))
    Image.fromarray(pixels, mode=mode).save(tmp_path / "a.png")
    got = I.read_image(tmp_path / "a.png").astype(int)
    expect = over_white(colour.astype(np.float64), alpha)
    assert np.abs(got - expect).max() <= 0.5 + 1e-4            # rounded to the nearest
    assert list(got[0, 0]) == [255, 255, 255] and np.array_equal(got[0, 1], colour[0, 1])


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6                                            # rotate 90 degrees clockwise
    Image.fromarray(RGB).save(tmp_path / "r.jpg", exif=exif, quality=95)
    got = I.read_image(tmp_path / "r.jpg")
    with Image.open(tmp_path / "r.jpg") as im:
        stored = np.asarray(im.convert("RGB"))
        assert stored.shape == (24, 40, 3)
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert got.shape == (40, 24, 3)
    assert np.array_equal(got, reference)
    assert np.array_equal(got, np.rot90(stored, k=-1))


def test_webp_is_read_or_refused_as_skipped(tmp_path, monkeypatch):
    if not I.webp_supported():
        pytest.skip("this Pillow has no WebP support")
    Image.fromarray(RGB).save(tmp_path / "w.webp", lossless=True)
    assert np.array_equal(I.read_image(tmp_path / "w.webp"), RGB)
    assert "w.webp" in F.list_images(tmp_path)
    monkeypatch.setattr(I, "webp_supported", lambda: False)
    one_line(lambda: I.read_image(tmp_path / "w.webp"), "w.webp", "skipped", "WebP")
    stack, ok, errors = F.load_images(tmp_path, ["w.webp"], 8)
    assert stack.shape == (0, 8, 8, 3) and not ok.any()
    assert errors[0][0] == "w.webp" and "WebP" in errors[0][1]


def test_bad_files_are_one_line_naming_the_file(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    one_line(lambda: I.read_image(tmp_path / "truncated.png"), "truncated.png")
    one_line(lambda: I.read_image(tmp_path / "notes.png"), "notes.png", "not an image")
    one_line(lambda: I.read_image(tmp_path / "empty.jpg"), "empty.jpg")
    one_line(lambda: I.read_image(tmp_path / "missing.png"), "missing.png", "not found")
    stack, ok, errors = F.load_images(tmp_path, ["good.png", "truncated.png", "notes.png"], 16)
    assert stack.shape == (1, 16, 16, 3) and list(ok) == [True, False, False]
    assert [e[0] for e in errors] == ["truncated.png", "notes.png"]


# ------------------------------------------------------------------ the resize rule
def test_crop_rule_by_hand():
    """A 20 x 40 image at 20: the shorter side already fits, so the rule keeps the centre
    columns 10..29 exactly; squash halves the width instead."""
    wide = RNG.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    assert np.array_equal(I.fit_image(wide, 20), wide[:, 10:30])
    assert np.array_equal(I.fit_image(wide.transpose(1, 0, 2), 20),
                          wide.transpose(1, 0, 2)[10:30])
    squash = I.fit_image(wide, 20, rule="squash")
    assert np.array_equal(squash, np.asarray(Image.fromarray(wide).resize(
        (20, 20), Image.Resampling.BICUBIC)))
    square = RGB[:, :24]
    assert np.array_equal(I.fit_image(square, 24), square)      # passed through
    assert np.array_equal(I.fit_image(square, 12), I.fit_image(square, 12, rule="squash"))
    one_line(lambda: I.fit_image(wide, 20, rule="stretch"), "stretch", "crop")
    one_line(lambda: I.fit_image(wide, 0), "positive")


def test_crop_rule_matches_clips_image_processor():
    transformers = pytest.importorskip("transformers")
    from skimage.data import chelsea

    cat = chelsea()                                             # 300 x 451
    for size, image in [(64, cat), (224, cat), (50, cat.transpose(1, 0, 2))]:
        proc = transformers.CLIPImageProcessor(size={"shortest_edge": size},
                                               crop_size={"height": size, "width": size},
                                               do_rescale=False, do_normalize=False)
        theirs = proc(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
        ours = I.fit_image(image, size)
        assert ours.shape == (size, size, 3)
        assert np.abs(ours.astype(float) - theirs).max() <= 1, size


def test_dataset_and_folder_index_see_the_same_pixels(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "x.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(RGB).save(tmp_path / "y.jpg", quality=90, exif=exif)
    ds = RetrievalDataset(name="t", image_paths=[tmp_path / "x.jpg", tmp_path / "y.jpg"],
                          split=["test", "test"], captions=[], caption_image=[])
    for i, name in enumerate(("x.jpg", "y.jpg")):
        for size in (16, 23, 64):
            a = ds.load_image(i, size)
            assert a.shape == (size, size, 3)
            assert np.array_equal(a, F.load_image(tmp_path / name, size))
    assert np.array_equal(ds.images[np.array([1])][0], F.load_image(tmp_path / "y.jpg", 64))
    one_line(lambda: RetrievalDataset(name="t", image_paths=[tmp_path / "nope.png"],
                                      split=["test"], captions=[], caption_image=[]
                                      ).load_image(0, 8), "nope.png", "image 0 of t")


# ------------------------------------------------------------------ the pixel check
def test_check_images_accepts_and_converts():
    batch = RGB[None]
    assert I.check_images(batch) is batch                       # no copy
    assert I.check_images(RGB).shape == (1, 24, 40, 3)          # one image
    assert I.to_rgb_uint8(batch) is batch
    grey = RGB[None, ..., 0]                                    # [1, H, W]
    one_line(lambda: I.check_images(grey), "[N, H, W, 1]")
    got = I.check_images(grey, batch_only=True)
    assert got.shape == (1, 24, 40, 3) and np.array_equal(got[..., 2], grey)
    one_line(lambda: I.check_images(RGB, name="OCR images", batch_only=True), "OCR images",
             "one image", "images[None]")
    x16 = (RGB.astype(np.uint16) * 257)[None]
    assert np.array_equal(I.check_images(x16), batch)
    assert np.array_equal(I.check_images(batch / 255.0), batch)


@pytest.mark.parametrize("bad, words", [
    (RGB[None].astype(np.float32), ["float images must lie in [0, 1]", "divide"]),
    (np.full((1, 2, 2, 3), np.nan), ["NaN"]),
    (np.full((1, 2, 2, 3), -3, np.int32), ["0..255", "-3"]),
    (np.zeros((2, 3, 4, 4, 3), np.uint8), ["got shape (2, 3, 4, 4, 3)"]),
    (np.zeros(5, np.uint8), ["got shape (5,)"]),
    (np.zeros((0, 8, 8, 3), np.uint8), ["empty"]),
    (np.zeros((2, 3, 8, 8), np.uint8), ["channels-first"]),
    ([], ["empty list"]),
])
def test_check_images_refuses_in_one_line(bad, words):
    one_line(lambda: I.check_images(bad, name="CLIP images"), "CLIP images", *words)
