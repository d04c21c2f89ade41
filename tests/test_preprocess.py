import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from snncli.errors import ImageError
from snncli.preprocess import (
    MNIST_STROKE,
    centre_by_mass,
    digit_mask,
    fit_box,
    fix_polarity,
    ink_is_dark,
    load_digit,
    load_prepared,
    mass_width,
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


# Kinds of real users' images that the pipeline once misread (issue 21).


def test_a_small_drawing_with_1_pixel_strokes_is_thickened_to_mnist_width(tmp_path):
    canvas = Image.new("L", (28, 28), 255)
    draw = ImageDraw.Draw(canvas)
    draw.line([(7, 8), (14, 4), (20, 8), (8, 23), (21, 23)], fill=0, width=1)  # a 1-pixel 2
    assert mass_width(1 - np.asarray(canvas) / 255) < 1.1
    out = load_digit(save(canvas, tmp_path / "pencil.png"))
    assert_mnist_layout(out)
    # MNIST's strokes: mass_width median 1.8, 5% under 1.2
    assert mass_width(out / 255) >= 1.5, mass_width(out / 255)


def mnist_made(height: int = 20) -> np.ndarray:
    """A digit made exactly the way MNIST's were: a thick anti-aliased 2, fitted, centred."""
    big = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(big).line(
        [(40, 50), (100, 20), (150, 60), (50, 170), (160, 170)], fill=255, width=26, joint="curve"
    )
    crop = np.asarray(big.crop(big.getbbox()), dtype=np.float64) / 255
    return (centre_by_mass(fit_box(crop, height)) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("invert", [False, True])
def test_an_mnist_like_28x28_image_passes_unchanged(tmp_path, invert):
    digit = mnist_made()
    given = 255 - digit if invert else digit
    out = load_digit(save(Image.fromarray(given), tmp_path / "mnist.png"))
    assert np.array_equal(out, digit)


def test_an_mnist_like_image_off_centre_is_only_moved(tmp_path):
    digit = mnist_made(19)
    moved = np.roll(digit, (3, -2), axis=(0, 1))
    out = load_digit(save(Image.fromarray(moved), tmp_path / "off.png"))
    assert np.array_equal(out, digit)


def grey_ring_photo(size: int = 160) -> Image.Image:
    """A thick dark 0 on grey paper in dim, uneven light: the border is mid-grey."""
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).ellipse((45, 20, 115, 140), outline=255, width=26)
    ink = np.asarray(canvas, dtype=np.float64) / 255
    light = np.linspace(0.55, 1.0, size)[None, :] * np.linspace(1.0, 0.8, size)[:, None]
    paper = 0.62 * light
    return Image.fromarray(((paper * (1 - ink) + 0.08 * ink * light) * 255).astype(np.uint8))


def test_a_thick_ring_on_grey_paper_stays_a_whole_ring(tmp_path):
    image = grey_ring_photo()
    grey = np.asarray(image) / 255
    assert 0.3 < np.median(grey[:8]) < 0.5  # below 0.5: the border alone would say light ink
    assert ink_is_dark(grey)
    out = load_digit(save(image, tmp_path / "ring.jpg", quality=85))
    assert_mnist_layout(out)
    assert out[14, 14] < 40  # the inside is paper, not filled in
    holes, count = ndimage.label(out < 60)
    assert count == 2  # outside and inside: the ring is closed
    assert ndimage.label(out > 128, structure=np.ones((3, 3)))[1] == 1  # one stroke, unbroken


def test_chalk_on_a_mid_grey_board_is_light_ink():
    board = np.full((120, 120), 0.5) * np.linspace(1.2, 0.95, 120)[None, :]  # border median > 0.5
    board[20:100, 55:62] += 0.35  # a chalk 1
    assert np.median(board[:6]) > 0.5 and not ink_is_dark(board)
    flat = remove_background(fix_polarity(board))
    assert flat[60, 58] == pytest.approx(1.0, abs=0.02) and flat[60, 20] < 0.05


def test_ink_on_paper_is_as_deep_in_a_shadow_as_in_the_light():
    observed = np.full((90, 90), 0.9)
    observed[:, 45:] *= 0.5  # the right half in a shadow
    observed[20:70, 20:24] *= 0.3  # a stroke in the light...
    observed[20:70, 66:70] *= 0.3  # ...and one in the shadow, the same ink
    flat = remove_background(1 - observed, paper=True)
    assert flat[45, 22] == pytest.approx(flat[45, 68], rel=0.05)
    assert flat[5, 5] == flat[5, 80] == 0


def test_a_neighbours_piece_cut_by_the_edge_is_dropped():
    ink = np.zeros((100, 120))
    ink[20:80, 55:60] = 1.0  # the digit: a 1 in the middle
    ink[20:80, 0:4] = 1.0  # the neighbour's right side, cut by the left edge...
    ink[20:25, 0:20] = 1.0  # ...with a bar: more ink than the 1 has
    ink[75:80, 0:20] = 1.0
    mask = digit_mask(ink)
    assert mask[50, 57] and not mask[50, 2] and not mask[22, 10]


def test_a_digit_touching_the_edge_is_kept_beside_small_bits_inside():
    ink = np.zeros((100, 100))
    ink[0:100, 40:46] = 1.0  # a tightly cropped 1 from the top edge to the bottom
    ink[50:54, 70:74] = 1.0  # a speck inside
    ink[10:30, 80:83] = 1.0  # a short scratch inside
    mask = digit_mask(ink)
    assert mask[50, 42] and not mask[52, 72] and not mask[20, 81]


def test_faint_blurry_ballpoint_on_tinted_paper_in_dim_light_is_found(tmp_path):
    canvas = Image.new("L", (170, 130), 0)
    ImageDraw.Draw(canvas).line([(40, 45), (70, 30), (90, 55), (40, 120), (95, 118)], fill=255,
                                width=4, joint="curve")
    ink = np.asarray(canvas.filter(ImageFilter.GaussianBlur(2.5)), dtype=np.float64)[..., None]
    depth = 0.2 * ink / ink.max()  # the ink takes at most a fifth of the paper's light
    light = np.linspace(0.6, 0.45, 130)[:, None, None]
    pink, pen = np.array([0.96, 0.86, 0.88]), np.array([0.35, 0.3, 0.6])
    rgb = (pink * (1 - depth) + pen * depth) * light
    noise = np.random.default_rng(0).normal(0, 0.004, rgb.shape)
    image = Image.fromarray(((rgb + noise).clip(0, 1) * 255).astype(np.uint8))
    out = load_digit(save(image, tmp_path / "ballpoint.png"))
    assert_mnist_layout(out)
    assert (out > 128).sum() > 60  # the whole 2, not a few bright bits


# Faint drawings, tight crops (issue 29).


def faint_two(size: int = 28, depth: float = 14, paper: float = 250, noise: float = 0.0,
              seed: int = 0) -> np.ndarray:
    """A 2 drawn with a 1-pixel light-grey pencil: its darkest pixel `depth` grey levels
    below the paper, optionally with sensor noise."""
    canvas = Image.new("L", (size, size), 0)
    k = size / 28
    ImageDraw.Draw(canvas).line(
        [(7 * k, 8 * k), (14 * k, 4 * k), (20 * k, 8 * k), (8 * k, 23 * k), (21 * k, 23 * k)],
        fill=255, width=1,
    )
    line = np.asarray(canvas, dtype=np.float64) / 255
    grey = paper - depth * line + np.random.default_rng(seed).normal(0, noise, line.shape)
    return grey.round().clip(0, 255).astype(np.uint8)


def encoded(array: np.ndarray, kind: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=kind, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "grey,kind",
    [
        (faint_two(depth=12), "PNG"),  # 12 grey levels below white paper, 28x28
        (faint_two(depth=10, paper=255), "PNG"),
        (faint_two(size=120, depth=15), "PNG"),  # a larger drawing, still a 1-pixel line
        (faint_two(size=90, depth=15, paper=170, noise=1.5), "PNG"),  # on grey paper, grain
        (faint_two(depth=18, noise=2.0, seed=3), "PNG"),  # "a little noise"
        (faint_two(size=56, depth=16), "JPEG"),
    ],
    ids=["white-12", "white-10", "large", "grey-paper-noise", "noise", "jpeg"],
)
def test_a_faint_line_is_stretched_and_read_as_low_contrast(grey, kind):
    assert int(grey.max()) - int(grey.min()) <= 30  # faint indeed (noise included)
    prepared = load_prepared(encoded(grey, kind, **({"quality": 80} if kind == "JPEG" else {})))
    assert prepared.low_contrast
    assert_mnist_layout(prepared.image)
    assert prepared.image.max() == 255 and (prepared.image > 128).sum() > 40  # the whole 2


def test_a_clear_digit_is_not_low_contrast(tmp_path):
    prepared = load_prepared(save(paper_digit(), tmp_path / "clear.png"))
    assert not prepared.low_contrast


@pytest.mark.parametrize("size", [28, 150])
@pytest.mark.parametrize("paper", [250, 128, 30])
@pytest.mark.parametrize("noise", [0.0, 2.0, 8.0, 16.0])
def test_uniform_and_noise_only_images_are_blank(size, paper, noise):
    grey = paper + np.random.default_rng(size + paper).normal(0, noise, (size, size))
    data = encoded(grey.round().clip(0, 255).astype(np.uint8))
    with pytest.raises(ImageError, match="the image is blank"):
        load_prepared(data)


@pytest.mark.parametrize("quality", [None, 75])
def test_textured_paper_without_a_stroke_is_blank(quality):
    """Blotches of paper texture and grain (and JPEG's 8x8 blocks) are not a stroke."""
    rng = np.random.default_rng(4)
    blotches = np.asarray(
        Image.fromarray(rng.normal(128, 40, (12, 12)).clip(0, 255).astype(np.uint8)).resize(
            (160, 160), Image.Resampling.BICUBIC), dtype=np.float64) - 128
    grey = 230 + 0.1 * blotches + rng.normal(0, 2, (160, 160))
    kind = "JPEG" if quality else "PNG"
    data = encoded(grey.round().clip(0, 255).astype(np.uint8), kind,
                   **({"quality": quality} if quality else {}))
    with pytest.raises(ImageError, match="the image is blank"):
        load_prepared(data)


def ink_box(image: Image.Image) -> np.ndarray:
    """The ink (bright) of a drawing, cropped to its box: True where ink."""
    ink = np.asarray(image) > 127
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def as_mnist_made_it(ink: np.ndarray) -> np.ndarray:
    """What MNIST's making does with a clean digit: strokes to MNIST's width, the box into
    20x20 keeping its aspect ratio, centred by mass in 28x28."""
    digit = fit_box(match_stroke(ink.astype(np.float64), MNIST_STROKE))
    return (centre_by_mass(digit) * 255).round().astype(np.uint8)


def black_and_white(ink: np.ndarray, dark_ink: bool) -> bytes:
    return encoded(np.where(ink, 0, 255).astype(np.uint8) if dark_ink
                   else np.where(ink, 255, 0).astype(np.uint8))


def narrow_seven() -> np.ndarray:
    """A 7 cropped to its ink, 40x90: its bar runs along the top edge and touches the left
    and right ones, its foot the bottom one."""
    canvas = Image.new("L", (40, 90), 0)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 39, 7), fill=255)
    draw.line([(35, 4), (12, 89)], fill=255, width=8)
    return ink_box(canvas)


def tight_one() -> np.ndarray:
    """A 1 with a flag and a base cropped to its ink (20x65): its stem is the whole right
    edge and its base the whole bottom one, so ink is over half of the border."""
    canvas = Image.new("L", (30, 70), 0)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((12, 0, 19, 64), fill=255)
    draw.line([(0, 16), (15, 2)], fill=255, width=7)
    draw.rectangle((2, 58, 19, 64), fill=255)
    return ink_box(canvas)


@pytest.mark.parametrize("dark_ink", [True, False], ids=["black-on-white", "white-on-black"])
@pytest.mark.parametrize("make", [narrow_seven, tight_one], ids=["seven", "one"])
def test_a_tight_black_and_white_crop_comes_out_as_mnist_would_make_it(make, dark_ink):
    ink = make()
    assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
    out = load_digit(black_and_white(ink, dark_ink))
    assert np.abs(out.astype(int) - as_mnist_made_it(ink)).mean() < 2


def test_a_narrow_sevens_top_bar_is_kept():
    out = load_digit(black_and_white(narrow_seven(), dark_ink=False))
    rows = np.flatnonzero((out > 128).any(1))
    top = (out[rows[0] : rows[0] + 3] > 128).sum(1).max()
    assert top >= 6  # the bar spans the 7's width (about 9 pixels), not a 1's flag


def test_a_neighbours_blob_at_the_edge_of_a_tight_crop_is_dropped():
    seven = narrow_seven()
    crop = np.zeros((90, 40 + 3 + 6), bool)  # the row's next digit reaches into the crop...
    crop[:, :40] = seven
    crop[30:52, 43:] = True  # ...3 pixels to the right of the 7
    alone = load_digit(black_and_white(seven, dark_ink=True))
    assert np.abs(load_digit(black_and_white(crop, True)).astype(int) - alone).mean() < 1


def test_a_fives_flag_in_a_tight_crop_is_kept():
    """A detached flag overlaps the body's columns: part of the digit, not a neighbour."""
    canvas = Image.new("L", (60, 90), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line([(8, 4), (59, 4)], fill=255, width=8)  # the flag, not touching the body
    draw.line([(8, 14), (5, 44)], fill=255, width=8)
    draw.arc((0, 36, 56, 89), start=-150, end=160, fill=255, width=8)
    out = load_digit(black_and_white(ink_box(canvas), dark_ink=True))
    rows = np.flatnonzero((out > 128).any(1))
    assert (out[rows[0] : rows[0] + 2] > 128).sum(1).max() >= 8  # the flag is still there


def test_a_tight_crop_of_a_shaded_photo_keeps_the_ink_along_its_edge():
    """Pen on paper in uneven light (not two-tone, so the lighting is removed): the 7's bar
    along the top edge is ink, not repeated beyond the edge into a band the lighting
    filter would take for paper."""
    ink = narrow_seven()
    paper = np.linspace(170, 240, ink.shape[0])[:, None] * np.ones((1, ink.shape[1]))
    grey = np.where(ink, 40.0, paper) + np.random.default_rng(0).normal(0, 3, ink.shape)
    out = load_digit(encoded(grey.clip(0, 255).astype(np.uint8)))
    assert np.abs(out.astype(int) - as_mnist_made_it(ink)).mean() < 3


def phone_photo_of_a_small_two(size=(1600, 1200), at=(700, 500), height=80, pen=5):
    """A full-size phone photo: a small ballpoint 2 on paper in a gentle slope of light."""
    canvas = Image.new("L", size, 0)
    k, (x, y) = height / 20, at
    ImageDraw.Draw(canvas).line(
        [(x + 2 * k, y + 4 * k), (x + 8 * k, y), (x + 14 * k, y + 4 * k), (x + 2 * k, y + 19 * k),
         (x + 15 * k, y + 19 * k)], fill=255, width=pen, joint="curve")
    ink = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64) / 255
    light = np.linspace(1.0, 0.8, size[0])[None, :]
    return Image.fromarray((255 * light * (0.92 - 0.7 * ink)).clip(0, 255).astype(np.uint8))


def test_a_small_digit_on_a_large_photo_is_looked_at_closely(tmp_path):
    """Reduced to 256 pixels a side, the 80-pixel 2 of a 1600-pixel photo would be 13 pixels
    tall with strokes under a pixel wide; it is read from the photo as given instead, as a
    crop around it would be."""
    photo = phone_photo_of_a_small_two()
    whole = load_digit(save(photo, tmp_path / "photo.jpg", quality=80))
    crop = load_digit(save(photo.crop((600, 400, 900, 700)), tmp_path / "crop.jpg", quality=80))
    assert_mnist_layout(whole)
    assert np.abs(whole.astype(int) - crop).mean() < 6
