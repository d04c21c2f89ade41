"""Turning a user's image into an MNIST-like 28x28 digit, the way MNIST itself was made.

MNIST digits are white on black, cropped to the ink, scaled to fit a 20x20 box (aspect kept,
anti-aliased) and placed in 28x28 with their centre of mass at the centre. Users' images are
photos and drawings of any size and polarity, so each step below undoes one difference.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .errors import ImageError

WORK_SIZE = 256  # images are reduced to at most this many pixels a side before analysis
MAX_PIXELS = 50_000_000  # larger images are refused before decoding (decompression bombs)
# Median MNIST stroke width in its 20x20 box by `stroke_width` (2,000 test digits: 2.64;
# 10% are under 2.1, 10% over 3.7).
MNIST_STROKE = 2.6
SMALL = 64  # images whose longer side is under this are enlarged before analysis
# An MNIST-like 28x28 input passes unchanged but for re-centring when its strokes are at least
# this wide by `mass_width` (MNIST's test digits: median 1.82, 5% under 1.2; a 1-pixel line
# scores 0.7-1.0, so such drawings take the full path and are thickened).
MNIST_MIN_WIDTH = 1.2


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open any Pillow-readable image (first frame if animated), EXIF orientation applied.

    A file that is not a complete image is refused (ImageError, one line): cut short, with a
    broken checksum or data stream, or missing its end marker (PNG, GIF), or holding pixel
    values that are not numbers. Nothing is ever classified from part of an image. Pillow's
    complaints about metadata (EXIF) are not printed: the pixels are what counts.
    """
    label = name or str(source if not isinstance(source, bytes) else "<stdin>")
    try:
        with warnings.catch_warnings(record=True) as remarks:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                _decode(image, label)
                _check_complete(image, source, label, [str(r.message) for r in remarks])
                return reduced_upright(image)  # a copy: the file is closed on return
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"image {label} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{label} is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{label} is too large; use an image under {MAX_PIXELS // 1_000_000} megapixels"
        ) from None
    except UnidentifiedImageError:
        empty = " (the file is empty)" if _size(source) == 0 else ""
        raise ImageError(f"{label} is not an image Pillow can read{empty}") from None
    except OSError as exc:
        if exc.errno is not None:  # the file system's refusal, not the decoder's
            raise ImageError(f"cannot read {label}: {exc.strerror}") from None
        raise ImageError(f"{label} is truncated or damaged: {_first_line(exc)}") from None
    except (SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageError(f"{label} is truncated or damaged: {_first_line(exc)}") from None
    except Exception as exc:  # a decoder's own exception type, for an unusual file
        raise ImageError(f"{label} could not be decoded: {_first_line(exc)}") from None


def _decode(image: Image.Image, label: str) -> None:
    """Decode the first frame (JPEGs at a reduced size), after the size check on the header."""
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(
            f"{label} is too large ({image.width}x{image.height}); "
            f"use an image under {MAX_PIXELS // 1_000_000} megapixels"
        )
    image.seek(0)
    image.draft("L", (WORK_SIZE * 2, WORK_SIZE * 2))  # fast JPEG downscale on decode
    with _c_stderr_silenced(image.format == "TIFF"):
        image.load()


# Images at least twice this on their longer side are shrunk by a whole factor as they are read,
# to at least this: twice the size analysis works at, in a fraction of the memory.
READ_SIZE = 2 * WORK_SIZE
_REDUCIBLE_MODE = {"1": "L", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}
_UPRIGHT = {  # EXIF orientation -> the transposition that undoes it (as ImageOps applies it)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def reduced_upright(image: Image.Image) -> Image.Image:
    """A decoded image upright (its EXIF orientation applied), as a new image. One at least
    twice READ_SIZE on its longer side is first shrunk by a whole factor to at least
    READ_SIZE, each pixel the mean of a block (transparency premultiplied, as Pillow's reduce
    does), strip by strip: no full-size copy is made beside the decoded pixels, and the
    analysis, which converts the image to float64, gets a small one (a 50-megapixel photo would
    cost 400 MB as grey, 1.6 GB with transparency). JPEGs are already decoded reduced
    (`_decode`); other formats decode whole."""
    factor = max(image.size) // READ_SIZE
    if factor < 2:
        return ImageOps.exif_transpose(image)
    mode = _REDUCIBLE_MODE.get(image.mode, image.mode)
    if image.mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
    width, height = image.size
    rows = factor * max(1, 2**22 // (width * factor))  # strips of about 4 million pixels
    small = Image.new(mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        small.paste(strip.convert(mode).reduce(factor), (0, top // factor))
    turn = _UPRIGHT.get(image.getexif().get(ExifTags.Base.Orientation, 1))
    return small.transpose(turn) if turn is not None else small


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, identical in every PNG


def _check_complete(
    image: Image.Image, source: str | Path | bytes, label: str, remarks: list[str]
) -> None:
    """Refuse what Pillow decodes with at most a warning although the file is damaged: a PNG
    whose chunks fail their checksums or that lacks its end chunk (its image data may be
    whole or not), a GIF cut before its trailer, a TIFF whose directory (the file's own
    structure, not metadata) ends early, float pixels that are not numbers."""
    cut = [r for r in remarks if "Truncated" in r or "Expecting to read" in r]
    if image.format == "TIFF" and cut:
        raise ImageError(f"{label} is truncated or damaged: {_first_line(cut[0])}")
    if image.format == "PNG":
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as again:
            again.verify()  # every chunk's CRC, up to IEND
        if _PNG_END not in _tail(source, 64 * 1024):
            raise ImageError(f"{label} is truncated or damaged: its PNG end chunk is missing")
    elif image.format == "GIF" and not _tail(source, 16).rstrip(b"\0").endswith(b";"):
        raise ImageError(f"{label} is truncated or damaged: its GIF trailer is missing")
    if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
        raise ImageError(f"{label} is damaged: it holds pixel values that are not numbers")


def _tail(source: str | Path | bytes, count: int) -> bytes:
    if isinstance(source, bytes):
        return source[-count:]
    with open(source, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - count))
        return f.read()


def _size(source: str | Path | bytes) -> int | None:
    try:
        return len(source) if isinstance(source, bytes) else os.path.getsize(source)
    except OSError:
        return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def _c_stderr_silenced(active: bool = True):
    """libtiff prints its complaints straight to file descriptor 2, as lines of its own beside
    the one error line; while it decodes, that descriptor points at the null device."""
    saved = None
    if active:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def to_grey(image: Image.Image) -> np.ndarray:
    """float [H, W] in 0-1; transparency composited onto a background that contrasts the ink."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = np.asarray(image, dtype=np.float64)
        span = grey.max() - grey.min()
        return (grey - grey.min()) / span if span > 0 else np.zeros_like(grey)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        alpha = rgba[..., 3]
        lum = np.asarray(image.convert("RGBA").convert("L"), dtype=np.float64) / 255.0
        opaque = alpha > 0.5
        if 0 < opaque.mean() < 1:
            # Ink drawn on a transparent canvas: put it on a background of opposite brightness.
            ink_is_dark = lum[opaque].mean() < 0.5
            background = 1.0 if ink_is_dark else 0.0
            return alpha * lum + (1 - alpha) * background
        return lum
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def reduce_size(grey: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """Downscale (area-averaging) so the longer side is at most `size`; small images unchanged."""
    h, w = grey.shape
    if max(h, w) <= size:
        return grey
    scale = size / max(h, w)
    img = Image.fromarray(grey.astype(np.float32), mode="F")
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float64)


def enlarge_small(grey: np.ndarray) -> np.ndarray:
    """Scale up (bilinear) an image under SMALL pixels a side by a whole factor to at least
    2 * SMALL: at 28x28 a 1-pixel stroke cannot be measured or thickened by fractions of a
    pixel, while five times larger it can."""
    h, w = grey.shape
    if max(h, w) >= SMALL:
        return grey
    factor = -(-2 * SMALL // max(h, w))
    img = Image.fromarray(grey.astype(np.float32), mode="F")
    img = img.resize((w * factor, h * factor), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def border_values(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    m = max(1, min(h, w) // 20)
    return np.concatenate(
        [grey[:m].ravel(), grey[-m:].ravel(), grey[:, :m].ravel(), grey[:, -m:].ravel()]
    )


def _sample(image: np.ndarray) -> np.ndarray:
    """Every other pixel of every other row of a large image: enough for its statistics
    (percentiles of tones, a smooth background's median), at a quarter of their cost."""
    return image[::2, ::2] if image.size > 20_000 else image


def _background_size(grey: np.ndarray) -> int:
    """Width of the filters that estimate the background: wider than any stroke."""
    return max(3, min(grey.shape) // 3)


def ink_is_dark(grey: np.ndarray) -> bool:
    """Whether the digit is darker than its background. A clearly light or dark border
    decides. A mid-grey one (grey paper in dim light, a shadow) does not; then the side that
    reaches further beyond the border's range of values holds the ink: paper in uneven light
    spans a range, ink lies well outside it (a thick ring's inside, paper too, does not).
    Faint ink in a strong gradient may stay within that range; then the same test runs with
    the gradient taken out (`_flattened`), and failing that, the border's level decides."""
    border = border_values(grey)
    tight = _tight_crop_ink_is_dark(grey, border)
    if tight is not None:
        return tight
    level = np.median(border)
    if not 0.3 < level < 0.7:
        return bool(level > 0.5)
    for image in (grey, _flattened(grey)):
        smooth = ndimage.median_filter(image, size=3)
        low, high = np.percentile(border_values(smooth), [5, 95])
        darkest, brightest = np.percentile(smooth, [0.2, 99.8])
        dark, light = low - darkest, brightest - high
        if abs(dark - light) >= 0.03:
            return bool(dark > light)
    return bool(level > 0.5)


def _tight_crop_ink_is_dark(grey: np.ndarray, border: np.ndarray) -> bool | None:
    """For a high-contrast image whose border is a quarter or more of each of its two tones
    (ink crossing the edges: a digit cropped tightly to its ink, where ink may even hold most
    of the border), whether the ink is the dark tone; None for any other image. The ink is
    the tone in fewer pieces: a digit is one or two strokes, and the ink crossing the edges
    cuts the paper into several (a tight 7 leaves paper left and right of its stem, a 0 its
    corners and hole); with as many, the tone covering less of the image."""
    low, high = np.percentile(_sample(grey), [2, 98])
    if high - low < 0.5:
        return None
    mid = (low + high) / 2
    dark_share = float(np.mean(border < mid))
    if min(dark_share, 1 - dark_share) < 0.25:
        return None
    dark = grey < mid
    least = max(4, dark.size // 200)  # a piece of at least half a percent: no JPEG speckle

    def pieces(mask: np.ndarray) -> int:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        return int((np.bincount(labels.ravel())[1:] >= least).sum())

    dark_pieces, light_pieces = pieces(dark), pieces(~dark)
    if dark_pieces != light_pieces:
        return dark_pieces < light_pieces
    return bool(dark.mean() < 0.5)


def _flattened(grey: np.ndarray) -> np.ndarray:
    """`grey` less a smooth quadratic surface fitted to it (least squares on every fourth
    pixel): a shadow across the page and vignetting; thin strokes are too few to bend it much
    (a large thick ring does, hence only after the plain test)."""
    terms = _quadratic(grey.shape, 4)
    coef = np.linalg.lstsq(terms.T @ terms, terms.T @ grey[::4, ::4].ravel(), rcond=None)[0]
    return grey - (_quadratic(grey.shape, 1) @ coef).reshape(grey.shape)


def _quadratic(shape: tuple[int, int], step: int) -> np.ndarray:
    """[pixels, 6]: 1, x, y, x*x, x*y, y*y at every `step`-th pixel (x, y from -0.5 to 0.5)."""
    h, w = shape
    y, x = np.mgrid[0:h:step, 0:w:step]
    y, x = y.ravel() / h - 0.5, x.ravel() / w - 0.5
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def fix_polarity(grey: np.ndarray) -> np.ndarray:
    """Make the digit bright on a dark background (see `ink_is_dark`)."""
    return 1.0 - grey if ink_is_dark(grey) else grey


def remove_background(grey: np.ndarray, paper: bool = False, noise: float = 0.0,
                      scale: float = 1.0) -> np.ndarray:
    """Subtract uneven lighting and stretch contrast to 0-1 (`ink_depth`, `stretch_ink`);
    all zeros for an image holding no stroke (uniform, or noise alone)."""
    ink = stretch_ink(ink_depth(grey, paper), noise, scale)
    return np.zeros_like(grey) if ink is None else ink


def ink_depth(grey: np.ndarray, paper: bool = False) -> np.ndarray:
    """How far each pixel of a bright-ink image rises above its local background, relative
    to the paper's brightness when `paper` (`ink_and_paper`)."""
    return ink_and_paper(grey, paper)[0]


def ink_and_paper(grey: np.ndarray, paper: bool = False) -> tuple[np.ndarray, float]:
    """How far each pixel of a bright-ink image rises above its local background (uneven
    lighting subtracted by a grey opening wider than strokes), not stretched; the border's
    median is 0, so the background lies around 0 (noise of either sign). Also the paper's
    median brightness (1 for light ink on a dark ground): depth times that is grey levels.

    `paper`: `grey` is an inverted photo of dark ink on paper, so one minus the background is
    the paper's brightness, and the ink's depth is divided by it: light falls on ink and paper
    alike, so a stroke in a shadow is as deep, relative to its paper, as one in full light.
    The background is estimated as if the image went on beyond its border as its edge pixels
    do (not mirrored, as the filters would by default): a stroke near the border is then not
    mirrored into a wider one and taken for background, and ink at the border does not
    darken the estimate beside it. Ink on the edge itself is not repeated (`_inkless_edge`):
    a tight crop's top bar, repeated outward, would be as wide as the filter and taken for
    background. The filters reach half their width, so that much padding does."""
    paper_level = _two_tone_paper(grey)
    if paper_level is not None:  # no lighting to undo, and any stroke may be wide
        background = np.full_like(grey, paper_level)
    else:
        size = _background_size(grey)
        pad = size // 2 + 1
        padded = np.pad(_inkless_edge(grey, size), pad, mode="edge")
        padded[pad:-pad, pad:-pad] = grey
        background = ndimage.grey_opening(padded, size=(size, size), mode="nearest")
        background = ndimage.uniform_filter(background, size=size, mode="nearest")
        background = background[pad:-pad, pad:-pad]
    flat = grey - background
    brightness = 1.0
    if paper:
        flat = flat / np.maximum(1.0 - background, 0.1)
        brightness = float(np.median(1.0 - _sample(background)))
    if paper_level is not None:
        return flat, brightness
    # What is left of the background after the opening: the border's level.
    return flat - np.median(border_values(np.clip(flat, 0, None))), brightness


def _two_tone_paper(grey: np.ndarray) -> float | None:
    """The paper's level of a clean two-tone image of bright ink (a drawing app's export, a
    thresholded scan or crop: 95% of its pixels within 0.1 of its darkest or its brightest
    tone, which lie over 0.5 apart), or None for any other image (photos: shading, grain).
    Such an image needs no lighting removed, and the grey opening that removes it would take
    a stroke wider than its window (a third of a tight crop's narrow side) for paper."""
    grey = _sample(grey)
    low, high = np.percentile(grey, [2, 98])
    if high - low <= 0.5:
        return None
    near = (np.abs(grey - low) <= 0.1) | (np.abs(grey - high) <= 0.1)
    if near.mean() < 0.95:
        return None
    return float(np.median(grey[grey < (low + high) / 2]))


def _inkless_edge(grey: np.ndarray, size: int) -> np.ndarray:
    """`grey` with the ink on its outermost rows and columns replaced by the background
    beside it: a grey opening that sees only the image (outside counts as darker than
    anything), so a stroke along the edge is background nowhere. Only clear ink is replaced
    (over half the image's deepest ink above that background, and 0.3): a page's shading
    toward the edge, which that opening underestimates, stays as it is."""
    ring = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if ring.max() - grey.min() <= 0.3:  # nothing on the edge rises that far above anything
        return grey
    inside = ndimage.grey_opening(grey, size=(size, size), mode="constant",
                                  cval=float(grey.min()))
    rise = grey - inside
    ink = rise > max(0.5 * float(rise.max()), 0.3)
    ink[1:-1, 1:-1] = False
    return np.where(ink, inside, grey)


def noise_level(grey: np.ndarray) -> float:
    """The pixel noise's standard deviation (sensor grain, paper texture), robust to strokes:
    from the differences between neighbouring pixels, which are twice the pixels' variance.
    Strokes' edges are left out twice over: the largest fifth of the differences is (those
    below their 80th percentile hold 0.4377 of a Gaussian's variance), and the median
    difference (0.6745 of a deviation) bounds the figure, for a tiny drawing whose edges are
    over a fifth of its pixels."""
    diffs = np.abs(np.concatenate([np.diff(grey, axis=0)[:, ::2].ravel(),
                                   np.diff(grey, axis=1)[::2].ravel()]))
    if diffs.size == 0:
        return 0.0
    half, k = (diffs.size - 1) // 2, int(0.8 * (diffs.size - 1))
    ordered = np.partition(diffs, [half, k])
    trimmed = np.sqrt(np.mean(ordered[: k + 1] ** 2) / (2 * 0.4377))
    return float(min(trimmed, ordered[half] / 0.6745 / np.sqrt(2)))


# Strokes whose body lies less than this below (or above) the paper are low in contrast
# (24 grey levels of 255): faint pencil, dim ballpoint, read only by stretching them a lot.
LOW_CONTRAST = 24 / 255
CLEAR_INK = 0.2  # ink this deep (about 50 grey levels on white paper) is never mistaken
QUANTUM = 1.5 / 255  # steps smaller than this are rounding in an 8-bit file, not ink
# What smoothing over 0.8 of a given pixel leaves of independent pixel noise (1 / (2 sqrt(pi)
# 0.8)); in an enlarged image the pixels are not independent, so the noise is measured before.
SMOOTHED_NOISE = 0.35


def stroke_signal(flat: np.ndarray, noise: float, scale: float = 1.0) -> np.ndarray | None:
    """`flat` (`ink_depth`) itself when its ink is clear, else smoothed over about one pixel
    of the given image (`scale`: how much it was enlarged); None when it holds no stroke.

    Ink whose strokes are CLEAR_INK deep and 12 times the `noise` is a stroke. Fainter ink
    is one if it forms a connected run at least 8 of the given image's pixels long (half its
    side in a tiny image) standing
    out of a band-pass of the ink (smoothed over 0.8 of a pixel, less the ink smoothed over 2.5):
    by 3 times the band-pass's own spread (its median absolute value, so the noise, texture
    and JPEG blocks, whatever the strokes), 3 times what smoothing leaves of the pixel
    `noise`, and QUANTUM. The band-pass keeps lines and drops blotches of paper texture and
    gentle shading, so noise alone makes specks, never a line, while a 1-pixel line 10 grey
    levels deep on white paper is one."""
    if ink_contrast(np.clip(flat, 0, None)) >= max(CLEAR_INK, 12 * noise):
        return flat  # ink far above the paper and its noise: no need to look closer
    size = max(scale, 1.0)
    smooth = ndimage.gaussian_filter(flat, 0.8 * size, mode="nearest")
    band = smooth - ndimage.gaussian_filter(flat, 2.5 * size, mode="nearest")
    spread = 1.4826 * float(np.median(np.abs(band)))
    above = band > max(3 * spread, 3 * noise * SMOOTHED_NOISE, QUANTUM)
    if not above.any():
        return None
    labels, _ = ndimage.label(above, structure=np.ones((3, 3)))
    longest = max(max(b[0].stop - b[0].start, b[1].stop - b[1].start)
                  for b in ndimage.find_objects(labels))
    given = max(flat.shape) / size  # the given image's longer side, in its own pixels
    return smooth if longest >= min(8, given / 2) * size else None


def stretch_ink(flat: np.ndarray, noise: float = 0.0, scale: float = 1.0) -> np.ndarray | None:
    """The ink of `flat` (`ink_depth`) stretched so the body of its strokes reaches 1, or None
    when it holds no stroke (`stroke_signal`). Faint ink in noise (strokes under 12 times
    the noise deep) is read from the smoothed signal, so the stretch does not make grain into
    ink."""
    signal = stroke_signal(flat, noise, scale)
    if signal is None:
        return None
    ink = np.clip(flat, 0, None)
    if signal is not flat and ink_contrast(ink) < 12 * noise:
        # the smoothed ink less the noise that smoothing leaves (3 deviations)
        ink = np.clip(signal - 3 * SMOOTHED_NOISE * noise, 0, None)
    peak = ink.max()
    # Scale so the body of the strokes reaches 1: a high percentile of the inky pixels only,
    # since a small digit on a large canvas is well under 1% of all pixels.
    top = np.percentile(ink[ink > 0.25 * peak], 90)
    return np.clip(ink / top, 0, 1)


def ink_contrast(ink: np.ndarray) -> float:
    """The depth of the body of the strokes in `ink` (`ink_depth`, clipped at 0): the 90th
    percentile of the pixels over a quarter of the deepest."""
    peak = ink.max()
    return float(np.percentile(ink[ink > 0.25 * peak], 90)) if peak > 0 else 0.0


def otsu_threshold(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight - total * mean) ** 2 / np.maximum(weight * (total - weight), 1)
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float(edges[best[len(best) // 2] + 1])  # middle of a flat optimum


def digit_mask(ink: np.ndarray) -> np.ndarray:
    """Pixels of the digit: Otsu-thresholded ink; the largest component and the sizeable
    components near it (a 5's flag, a broken stroke) are kept, far specks and dirt dropped,
    and so are pieces of neighbouring digits cut by the image's edge (`_inside_only`,
    `_side_sliver`)."""
    mask = ink > max(0.2, otsu_threshold(ink))
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    boxes = ndimage.find_objects(labels)
    candidates = _inside_only(sizes, boxes, mask.shape)
    main = max(candidates, key=lambda i: sizes[i])
    candidates = [i for i in candidates if not _side_sliver(i, main, sizes, boxes, mask.shape)]
    keep = {main}
    grown = True
    while grown:  # add components that touch the kept ones' box, grown by a third of its size
        grown = False
        top = min(boxes[i][0].start for i in keep)
        bottom = max(boxes[i][0].stop for i in keep)
        left = min(boxes[i][1].start for i in keep)
        right = max(boxes[i][1].stop for i in keep)
        margin = max(bottom - top, right - left) / 3
        for i in candidates:
            if i in keep or sizes[i] < 0.05 * sizes.max():
                continue
            rows, cols = boxes[i]
            if (
                rows.start < bottom + margin
                and rows.stop > top - margin
                and cols.start < right + margin
                and cols.stop > left - margin
            ):
                keep.add(i)
                grown = True
    return np.isin(labels, [i + 1 for i in keep])


def _inside_only(sizes: np.ndarray, boxes: list, shape: tuple[int, int]) -> list[int]:
    """Indices of the components that may be the digit. A digit cut from a row of digits
    often holds a piece of its neighbour, clipped by the image's edge; the digit itself lies
    inside. So components touching the edge are left out when one inside is a real rival for
    the largest of them: at least 0.3 of its ink, and a longer side at least 0.6 of its."""
    h, w = shape
    touching = [
        b[0].start == 0 or b[1].start == 0 or b[0].stop == h or b[1].stop == w for b in boxes
    ]
    inside = [i for i, t in enumerate(touching) if not t]
    edge = [i for i, t in enumerate(touching) if t]
    if not inside or not edge:
        return list(range(len(boxes)))
    big = max(edge, key=lambda i: sizes[i])
    best = max(inside, key=lambda i: sizes[i])

    def extent(i: int) -> int:
        return max(boxes[i][0].stop - boxes[i][0].start, boxes[i][1].stop - boxes[i][1].start)

    rival = sizes[best] >= 0.3 * sizes[big] and extent(best) >= 0.6 * extent(big)
    return inside if rival else list(range(len(boxes)))


def _side_sliver(i: int, main: int, sizes: np.ndarray, boxes: list,
                 shape: tuple[int, int]) -> bool:
    """Whether component `i` is a sliver of a neighbouring digit at the left or right edge of
    an image cropped tightly around a digit in a row: it touches that edge, which the largest
    component (`main`) does not, lies wholly beyond that component's columns, and is small
    beside it (under 0.35 of its ink, and narrower than 0.35 of its longer side). A part of
    the digit itself overlaps its columns or is larger: a 5's flag, the stem of a 4 drawn in
    two strokes."""
    rows, cols = boxes[i]
    main_cols = boxes[main][1]
    width = shape[1]
    main_rows = boxes[main][0]
    longest = max(main_rows.stop - main_rows.start, main_cols.stop - main_cols.start)
    small = sizes[i] < 0.35 * sizes[main] and cols.stop - cols.start < 0.35 * longest
    left = cols.start == 0 and main_cols.start > 0 and cols.stop <= main_cols.start
    right = cols.stop == width and main_cols.stop < width and cols.start >= main_cols.stop
    return bool(small and (left or right))


def crop_to_ink(image: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """`image` cropped to the box of its ink: of `where` (a mask), else of its non-zero
    pixels."""
    where = image != 0 if where is None else where
    rows, cols = np.flatnonzero(where.any(1)), np.flatnonzero(where.any(0))
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def crop_to_digit(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink of the kept components (with their anti-aliased rims), cropped to its box."""
    return crop_to_ink(np.where(mask_near(mask) & (ink > 0.05), ink, 0.0))


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the ink area over its outline length."""
    area = mask.sum()
    if area == 0:
        return 0.0
    outline = (mask & ~ndimage.binary_erosion(mask, border_value=0)).sum()
    return float(2 * area / max(outline, 1))


def match_stroke(digit: np.ndarray, target: float) -> np.ndarray:
    """Thicken or thin the strokes of a cropped digit toward `target` pixels (in 20x20 terms).

    Pen widths vary from hairline to marker; MNIST's are fairly uniform, so strokes far from
    its width are changed by grey dilation or erosion at the crop's own resolution.
    """
    scale = 20 / max(digit.shape)
    width = stroke_width(digit > 0.5) * scale
    if width <= 0:
        return digit
    steps = int(round((target - width) / (2 * scale)))  # each pass moves each edge one pixel
    if steps > 0:
        size = 2 * steps + 1
        return ndimage.grey_dilation(np.pad(digit, steps), footprint=_disk(size))
    if steps < 0 and width > 1.6 * target:
        thin = ndimage.grey_erosion(digit, footprint=_disk(2 * -steps + 1))
        if (thin > 0.5).sum() <= 0.3 * (digit > 0.5).sum():
            return digit
        return crop_to_ink(thin)  # thinning shrank its box
    return digit


def _disk(size: int) -> np.ndarray:
    r = (size - 1) / 2
    y, x = np.mgrid[:size, :size]
    return (x - r) ** 2 + (y - r) ** 2 <= r * r + 0.5


def fit_box(digit: np.ndarray, box: int = 20) -> np.ndarray:
    """Scale so the longer side is `box` pixels, aspect ratio kept, anti-aliased."""
    h, w = digit.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(digit.astype(np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64).clip(0, 1)


def centre_by_mass(digit: np.ndarray, size: int = 28) -> np.ndarray:
    """Place `digit` in a size x size canvas with its centre of mass at the centre."""
    canvas = np.zeros((size, size))
    h, w = digit.shape
    cy, cx = ndimage.center_of_mass(digit) if digit.sum() > 0 else (h / 2, w / 2)
    top = int(round(size / 2 - cy))
    left = int(round(size / 2 - cx))
    top, left = min(max(top, 0), size - h), min(max(left, 0), size - w)
    canvas[top : top + h, left : left + w] = digit
    return canvas


def mass_width(ink: np.ndarray) -> float:
    """Stroke width in pixels from the ink's mass (0-1 values) over half its outline (edges
    between pixels over and under 0.3): a 1-pixel line scores about 1, however anti-aliased."""
    padded = np.pad(ink > 0.3, 1)
    edges = (padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum()
    return float(2 * ink.sum() / max(edges, 1))


def as_mnist(grey: np.ndarray) -> np.ndarray | None:
    """A 28x28 image already made like MNIST (a clean border, the ink's box 17-21 pixels,
    strokes of MNIST's width), re-centred by mass and otherwise unchanged; None for any other
    image. Cropping, scaling and thickening it again would only blur it."""
    if grey.shape != (28, 28):
        return None
    grey = fix_polarity(grey)
    low, peak = np.median(border_values(grey)), grey.max()
    if peak - low < 0.5:
        return None
    ink = np.clip((grey - low) / (peak - low), 0, 1)
    if np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]).max() > 0.1:
        return None
    strong = ink > 0.5
    rows, cols = np.flatnonzero(strong.any(1)), np.flatnonzero(strong.any(0))
    box = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    if not 17 <= box <= 21 or mass_width(ink) < MNIST_MIN_WIDTH:
        return None
    return centre_by_mass(crop_to_ink(ink, ink >= 0.04))  # not a JPEG's ripples around it


@dataclass
class Prepared:
    """A user's image made like MNIST: the uint8 [28, 28] digit, white on black, and whether
    its ink was low in contrast (LOW_CONTRAST) and read only by stretching it."""

    image: np.ndarray
    low_contrast: bool = False


def prepare(image: Image.Image, label: str = "image") -> Prepared:
    """Any digit image -> its MNIST-like digit (`Prepared`); ImageError when it holds none."""
    if image.width < 4 or image.height < 4:
        raise ImageError(f"{label} is too small ({image.width}x{image.height}) to hold a digit")
    grey = to_grey(image)
    ready = as_mnist(grey)
    if ready is not None:
        return Prepared((ready * 255).round().astype(np.uint8))
    grey = reduce_size(grey)
    found = find_digit(grey, label)
    found = _closer_look(image, grey, found, label) or found
    digit = fit_box(match_stroke(crop_to_digit(found.ink, found.mask), MNIST_STROKE))
    image = (centre_by_mass(digit) * 255).round().astype(np.uint8)
    return Prepared(image, low_contrast=bool(found.depth < LOW_CONTRAST))


@dataclass
class Found:
    """A digit found in a grey image: its stretched ink and mask (in the image enlarged by
    `enlarged`, `enlarge_small`), the ink's depth in grey levels (0-1) and its polarity."""

    ink: np.ndarray
    mask: np.ndarray
    depth: float
    dark: bool
    enlarged: float


def find_digit(grey: np.ndarray, label: str, dark: bool | None = None) -> Found:
    """The digit of a grey image of at most WORK_SIZE a side (`dark`: its polarity, found
    from the image when None); ImageError when it holds none."""
    noise = noise_level(grey)
    work = enlarge_small(grey)
    scale = work.shape[1] / grey.shape[1]
    dark = ink_is_dark(work) if dark is None else dark
    flat, brightness = ink_and_paper(1.0 - work if dark else work, paper=dark)
    ink = stretch_ink(flat, noise, scale)
    if ink is None:
        raise ImageError(f"no digit found in {label}: the image is blank")
    mask = digit_mask(ink)
    if not mask.any():
        raise ImageError(f"no digit found in {label}: the image is blank")
    depth = ink_contrast(np.clip(flat[mask], 0, None)) * brightness
    return Found(ink, mask, depth, dark, scale)


# A digit under this many pixels (its box's longer side) in an image reduced to WORK_SIZE is
# looked at again in the image as given: a phone photo of a small digit.
CLOSE_LOOK = 48


def _closer_look(image: Image.Image, grey: np.ndarray, found: Found, label: str) -> Found | None:
    """The digit found again in a crop of the image as given (the digit's box and as much
    again on every side, at most WORK_SIZE a side after reduction) when the image was reduced
    at least 1.5 times and the digit came out small (under CLOSE_LOOK pixels): MNIST's
    digits were scanned with their strokes several pixels wide, while a small digit on a
    large photo, reduced, keeps them under one. None when the crop says no better."""
    factor = image.width / grey.shape[1]
    rows = np.flatnonzero(found.mask.any(1)) / found.enlarged
    cols = np.flatnonzero(found.mask.any(0)) / found.enlarged
    size = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if factor < 1.5 or size >= CLOSE_LOOK:
        return None
    top, bottom = (rows[0] - size) * factor, (rows[-1] + 1 + size) * factor
    left, right = (cols[0] - size) * factor, (cols[-1] + 1 + size) * factor
    box = (max(0, int(left)), max(0, int(top)), min(image.width, int(np.ceil(right))),
           min(image.height, int(np.ceil(bottom))))
    try:
        return find_digit(reduce_size(to_grey(image.crop(box))), label, found.dark)
    except ImageError:
        return None


def mask_near(mask: np.ndarray) -> np.ndarray:
    """The digit's pixels and those within two of them (its anti-aliased rims)."""
    return ndimage.binary_dilation(mask, iterations=2)


def mnist_like(image: Image.Image, label: str = "image") -> np.ndarray:
    """Any digit image -> uint8 [28, 28], white digit on black, MNIST layout."""
    return prepare(image, label).image


def load_prepared(source: str | Path | bytes, name: str | None = None) -> Prepared:
    label = name or str(source if not isinstance(source, bytes) else "<stdin>")
    return prepare(open_image(source, label), label)


def load_digit(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    return load_prepared(source, name).image
