import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from snncli.errors import ImageError
from snncli.preprocess import (
    MNIST_STROKE,
    centre_by_mass,
    digit_mask,
    fit_box,
    fix_polarity,
    load_digit,
    match_stroke,
    otsu_threshold,
    remove_background,
    stroke_width,
)

from conftest import glyph


def assert_mnist_layout(digit: np.ndarray):
    """uint8 28x28, dark border, ink box fits 20x20 with one side ~20, mass at the centre."""
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.flatnonzero(digit.max(1) > 30), np.flatnonzero(digit.max(0) > 30)
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(height, width) in (19, 20, 21) and min(height, width) >= 4
    cy, cx = ndimage.center_of_mass(digit.astype(float))
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0
    assert digit[0].max() == digit[-1].max() == digit[:, 0].max() == digit[:, -1].max() == 0


def paper_digit(size=500, digit=3, dark_ink=True, offset=(60, -40), scale=12, gradient=0.0):
    """A large 'photo' of a digit: ink on paper, off-centre, optional lighting gradient."""
    small = glyph(digit, np.random.default_rng(0)).astype(float) / 255
    big = (
        np.asarray(
            Image.fromarray((small * 255).astype(np.uint8)).resize(
                (28 * scale // 2, 28 * scale // 2)
            )
        ).astype(float)
        / 255
    )
    canvas = np.zeros((size, size))
    top = size // 2 - big.shape[0] // 2 + offset[0]
    left = size // 2 - big.shape[1] // 2 + offset[1]
    canvas[top : top + big.shape[0], left : left + big.shape[1]] = big
    paper = 0.9 - gradient * np.linspace(0, 1, size)[None, :]
    grey = paper * (1 - canvas) + 0.1 * canvas if dark_ink else canvas * 0.9 + 0.05
    return Image.fromarray((grey * 255).clip(0, 255).astype(np.uint8))


def save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


def test_mnist_style_input_keeps_its_layout(tmp_path):
    path = save(Image.fromarray(glyph(5, np.random.default_rng(3))), tmp_path / "five.png")
    assert_mnist_layout(load_digit(path))


@pytest.mark.parametrize("dark_ink", [True, False])
def test_large_off_centre_digit_either_polarity(tmp_path, dark_ink):
    path = save(paper_digit(dark_ink=dark_ink), tmp_path / "photo.jpg", quality=70)
    assert_mnist_layout(load_digit(path))


def test_uneven_lighting_is_removed(tmp_path):
    path = save(paper_digit(gradient=0.5), tmp_path / "shadow.png")
    digit = load_digit(path)
    assert_mnist_layout(digit)
    assert (digit > 60).sum() < 0.35 * digit.size  # background did not turn into ink


def test_specks_are_dropped(tmp_path):
    image = paper_digit(offset=(0, 0))
    draw = ImageDraw.Draw(image)
    for x, y in [(20, 20), (470, 30), (30, 460)]:
        draw.ellipse((x, y, x + 4, y + 4), fill=0)
    assert_mnist_layout(load_digit(save(image, tmp_path / "specks.png")))


def test_transparent_background_rgba(tmp_path):
    ink = np.asarray(paper_digit()).astype(float) / 255
    rgba = np.zeros((500, 500, 4), np.uint8)
    rgba[..., 3] = ((1 - ink) > 0.3) * 255  # only the strokes are opaque, drawn in black
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "transparent.png")
    assert_mnist_layout(load_digit(path))


def test_16_bit_cmyk_and_animated_images(tmp_path):
    big = paper_digit(size=200, scale=5, offset=(10, 10))
    grey16 = Image.fromarray(np.asarray(big).astype(np.uint16) * 257)
    assert_mnist_layout(load_digit(save(grey16, tmp_path / "deep.png")))
    assert_mnist_layout(load_digit(save(big.convert("CMYK"), tmp_path / "cmyk.jpg")))
    frames = [big, Image.new("L", big.size, 255)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    assert_mnist_layout(load_digit(gif))


def test_stdin_bytes(tmp_path):
    buffer = io.BytesIO()
    paper_digit().save(buffer, format="PNG")
    assert_mnist_layout(load_digit(buffer.getvalue()))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_text("not an image"), "not an image Pillow can read"),
        (lambda p: p.write_bytes(b""), "not an image Pillow can read"),
        (lambda p: Image.new("L", (1, 1)).save(p, format="PNG"), "too small"),
        (lambda p: Image.new("L", (300, 300), 255).save(p, format="PNG"), "blank"),
        (lambda p: Image.new("RGB", (300, 300), (40, 90, 200)).save(p, format="PNG"), "blank"),
        (lambda p: Image.new("1", (20000, 20000)).save(p, format="PNG"), "too large"),
    ],
    ids=["text", "empty", "1x1", "all-white", "flat-colour", "huge"],
)
def test_bad_images_fail_with_one_clear_line(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        load_digit(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_digit(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_digit(tmp_path)


def test_small_steps():
    white_paper = np.full((40, 40), 0.9)
    white_paper[10:30, 18:22] = 0.1
    assert fix_polarity(white_paper)[0, 0] == pytest.approx(0.1)
    assert fix_polarity(1 - white_paper)[0, 0] == pytest.approx(0.1)
    flat = remove_background(fix_polarity(white_paper))
    assert flat[0, 0] == 0 and flat[20, 20] == pytest.approx(1.0)
    assert 0.2 < otsu_threshold(np.r_[np.zeros(100), np.ones(20)]) < 0.8
    boxed = fit_box(np.ones((40, 10)))
    assert boxed.shape == (20, 5)
    placed = centre_by_mass(np.ones((20, 5)))
    assert ndimage.center_of_mass(placed) == pytest.approx((14.0, 14.0), abs=0.6)


def test_stroke_width_is_measured_and_matched_to_mnist():
    bar = np.zeros((60, 60))
    bar[5:55, 28:32] = 1.0  # a 4-pixel-wide stroke, 50 long
    assert stroke_width(bar > 0.5) == pytest.approx(4, rel=0.15)
    hairline = np.zeros((100, 100))
    hairline[5:95, 50] = 1.0  # 1 pixel wide at a scale where the box is 90 pixels: far too thin
    thicker = match_stroke(hairline, MNIST_STROKE)
    assert stroke_width(thicker > 0.5) * 20 / max(thicker.shape) == pytest.approx(
        MNIST_STROKE, abs=0.8
    )
    marker = np.zeros((40, 40))
    marker[2:38, 12:28] = 1.0  # 16 of 36 pixels wide: a marker pen
    assert stroke_width(match_stroke(marker, MNIST_STROKE) > 0.5) < stroke_width(marker > 0.5)


def test_digit_mask_keeps_nearby_parts_and_drops_far_specks():
    ink = np.zeros((100, 100))
    ink[30:70, 45:50] = 1.0  # the main stroke
    ink[25:28, 45:60] = 1.0  # a detached flag just above it (a 5's top bar)
    ink[2:5, 2:5] = 1.0  # a speck in the corner
    ink[95:98, 90:93] = 1.0  # another one
    mask = digit_mask(ink)
    assert mask[26, 50] and mask[50, 47]
    assert not mask[3, 3] and not mask[96, 91]


@pytest.mark.parametrize("invert", [False, True])
def test_small_digit_on_a_large_canvas(tmp_path, invert):
    """A thin 0, 40 pixels tall, is under 0.5% of a 200x200 canvas: still found and scaled."""
    canvas = Image.new("L", (200, 200), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((140, 20, 164, 60), outline=255, width=2)
    if invert:
        canvas = Image.fromarray(255 - np.asarray(canvas))
    out = load_digit(save(canvas, tmp_path / "small.png"))
    assert_mnist_layout(out)
    assert out.max() == 255


def test_exif_orientation_is_applied(tmp_path):
    upright = paper_digit(size=200, digit=7, scale=5, offset=(0, 0)).convert("RGB")
    stored = upright.rotate(90, expand=True)  # what a phone stores for a turned camera
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    upright.save(tmp_path / "upright.jpg", quality=95)
    turned = load_digit(tmp_path / "phone.jpg").astype(float)
    reference = load_digit(tmp_path / "upright.jpg").astype(float)
    assert np.abs(turned - reference).mean() < 8
    assert np.abs(np.rot90(turned) - reference).mean() > 20
