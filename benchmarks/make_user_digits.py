"""Generate a labelled set of realistic *user-made* digit images (not MNIST-like).

People who run ``snn predict my_digit.png`` give us phone photos of a digit written on
paper, screenshots of a drawing app, chalk on a blackboard, transparent PNGs... This script
makes such images so that a preprocessing pipeline can be measured against them.

Two sources of digit shapes:

* ``font-KEY``: handwriting-like fonts from Debian packages (install them with
  ``apt-get install -y fonts-comic-neue fonts-dkg-handwriting fonts-bwht fonts-dancingscript
  fonts-humor-sans fonts-kaushanscript fonts-tlwg-purisa-ttf fonts-seto fonts-klee``);
  missing fonts are skipped:

  ======== ======================================================== =====================
  key      files (under /usr/share/fonts/)                          Debian package
  ======== ======================================================== =====================
  comic    opentype/comic-neue/ComicNeue-{Regular,Bold}.otf         fonts-comic-neue
  dkg      truetype/fifthhorseman/dkg{,Bd}.ttf                      fonts-dkg-handwriting
  bwht     opentype/bwht/BecauseWe{Connect,Organize}-Regular.otf    fonts-bwht
  dancing  opentype/dancingscript/DancingScript-{Regular,Bold}.otf  fonts-dancingscript
  humor    truetype/humor-sans/Humor-Sans.ttf                       fonts-humor-sans
  kaushan  opentype/kaushanscript/KaushanScript-Regular.otf         fonts-kaushanscript
  purisa   truetype/tlwg/Purisa{,-Bold}.ttf                         fonts-tlwg-purisa-ttf
  seto     truetype/seto/setofont.ttf                               fonts-seto
  klee     truetype/klee/KleeOne-{Regular,SemiBold}.ttf             fonts-klee
  ======== ======================================================== =====================

  Looked at and left out (a digit a person could misread): femkeklaver and cabinsketch
  (outlined, hatched glyphs), Kristi (its 4 reads as 9), Rufscript (its short-barred 7 reads
  as 1), breip (its open 0 reads as U), BecauseWe{Learn,Create,Mentor,Build} (a 7 like +,
  a 6 like b, a 4 that turns into a blob when thickened).

* ``stroke``: hand-designed stroke templates (unit box), jittered, smoothed and drawn with a
  round brush of random width, like someone drawing with a mouse in Paint.

Four styles: ``photo`` (dark ink on paper, lighting, noise, blur, ruled lines, specks; JPEG),
``drawing`` (flat background, either polarity; PNG), ``board`` (chalk on a dark board; JPEG)
and ``rgba`` (opaque ink on a transparent background; PNG). File names are
``{label}_{source}_{style}_{index}.{ext}``. Every image uses its own RNG seeded with
(seed, digit, index), so the output is reproducible.

Six kinds added for what real users' images held and these styles did not (issue 21), 20
each by default, every image from an RNG seeded with (seed, 100 + kind, index), so the first
300 images come out as before: ``small1px`` (a digit drawn at 24-40 px with a 1-pixel pencil),
``mnistlike`` (28x28, already made like MNIST), ``ringgrey`` (a thick marker 0, or a thick
4/6/8/9, photographed on grey paper in dim, uneven light), ``edgefragment`` (a digit cut from a
row, with a piece of its neighbour clipped by the edge), ``ballpoint`` (thin, faint ballpoint
on tinted paper, out of focus) and ``euro`` (European 1s: a long flag, often a base serif).
Their names are ``{label}_{source}_{kind}_{index}.{ext}``.

Six more kinds for what a second set of real users' images held (issue 29), from the streams
after those, all from stroke templates (no font needed): ``faint`` (a 1-pixel light-grey line
10-20 grey levels below the paper: on white, on grey paper, JPEG, with a little noise),
``tightcrop`` (a narrow 7 or 1 thresholded to black and white and cropped to its ink),
``tightblob`` (such a crop of any digit with a blob of its neighbour at the edge),
``closedfour`` (a closed-top 4: pen on grey paper, felt pen on tinted paper), ``phonebig`` (a
1000-1900 px phone photo of a small marker or ballpoint digit) and ``flagbase`` (a 1 with a
flag and a base). ``--kinds a,b`` (re)makes only those added kinds.

Usage: ``.venv/bin/python benchmarks/make_user_digits.py [--out DIR] [--per-digit N]
[--per-kind N] [--seed S] [--kinds K1,K2]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts")
FONTS = {
    "comic": [
        "opentype/comic-neue/ComicNeue-Regular.otf",
        "opentype/comic-neue/ComicNeue-Bold.otf",
    ],
    "dkg": ["truetype/fifthhorseman/dkg.ttf", "truetype/fifthhorseman/dkgBd.ttf"],
    "bwht": [f"opentype/bwht/BecauseWe{n}-Regular.otf" for n in ("Connect", "Organize")],
    "dancing": [
        "opentype/dancingscript/DancingScript-Regular.otf",
        "opentype/dancingscript/DancingScript-Bold.otf",
    ],
    "humor": ["truetype/humor-sans/Humor-Sans.ttf"],
    "kaushan": ["opentype/kaushanscript/KaushanScript-Regular.otf"],
    "purisa": ["truetype/tlwg/Purisa.ttf", "truetype/tlwg/Purisa-Bold.ttf"],
    "seto": ["truetype/seto/setofont.ttf"],
    "klee": ["truetype/klee/KleeOne-Regular.ttf", "truetype/klee/KleeOne-SemiBold.ttf"],
}

# Stroke templates: x right, y down, in a unit box. "c" = smooth curve through the points,
# "l" = straight polyline. Several variants per digit (e.g. 1 with/without base, 7 crossed).
# A point repeated (the joint of two strokes, the crossing of an 8) gets the same jitter.
# fmt: off
TEMPLATES = {
    0: [[("c", [(0.5, 0.04), (0.27, 0.15), (0.2, 0.5), (0.3, 0.86), (0.5, 0.96), (0.7, 0.86),
                (0.8, 0.5), (0.72, 0.14), (0.5, 0.04), (0.4, 0.1)])]],
    1: [[("l", [(0.33, 0.22), (0.56, 0.04), (0.56, 0.96)])],
        [("l", [(0.5, 0.04), (0.5, 0.96)])],
        [("l", [(0.33, 0.2), (0.54, 0.04), (0.54, 0.95)]), ("l", [(0.3, 0.95), (0.78, 0.95)])]],
    2: [[("c", [(0.22, 0.25), (0.36, 0.07), (0.58, 0.04), (0.76, 0.18), (0.72, 0.4),
                (0.5, 0.64), (0.22, 0.94)]), ("l", [(0.22, 0.94), (0.82, 0.93)])]],
    3: [[("c", [(0.24, 0.15), (0.48, 0.04), (0.72, 0.14), (0.7, 0.34), (0.45, 0.47)]),
         ("c", [(0.45, 0.47), (0.74, 0.58), (0.76, 0.82), (0.52, 0.96), (0.22, 0.86)])]],
    4: [[("l", [(0.6, 0.04), (0.17, 0.66), (0.84, 0.66)]), ("l", [(0.64, 0.34), (0.64, 0.97)])],
        [("l", [(0.3, 0.04), (0.22, 0.6), (0.82, 0.6)]), ("l", [(0.66, 0.1), (0.66, 0.97)])]],
    5: [[("l", [(0.78, 0.05), (0.3, 0.05), (0.26, 0.45)]),
         ("c", [(0.26, 0.45), (0.5, 0.37), (0.74, 0.5), (0.76, 0.76), (0.55, 0.95),
                (0.23, 0.87)])]],
    6: [[("c", [(0.7, 0.06), (0.46, 0.15), (0.29, 0.45), (0.26, 0.74), (0.45, 0.95), (0.68, 0.86),
                (0.73, 0.66), (0.56, 0.52), (0.36, 0.56), (0.27, 0.72)])]],
    7: [[("l", [(0.2, 0.06), (0.8, 0.06), (0.42, 0.96)])],
        [("l", [(0.2, 0.1), (0.22, 0.05), (0.8, 0.06), (0.44, 0.96)]),
         ("l", [(0.38, 0.5), (0.76, 0.5)])]],
    8: [[("c", [(0.5, 0.47), (0.7, 0.3), (0.67, 0.1), (0.5, 0.04), (0.32, 0.12), (0.33, 0.3),
                (0.5, 0.47), (0.74, 0.65), (0.72, 0.88), (0.5, 0.96), (0.28, 0.88), (0.27, 0.66),
                (0.5, 0.47)])]],
    9: [[("c", [(0.72, 0.22), (0.55, 0.05), (0.33, 0.1), (0.26, 0.3), (0.42, 0.46), (0.64, 0.4),
                (0.72, 0.22)]), ("l", [(0.72, 0.22), (0.7, 0.96)])],
        [("c", [(0.72, 0.22), (0.55, 0.05), (0.33, 0.1), (0.26, 0.3), (0.42, 0.46), (0.64, 0.4),
                (0.72, 0.22), (0.7, 0.6), (0.6, 0.9), (0.4, 0.96)])]],
}
# fmt: on


def available_fonts() -> list[tuple[str, Path]]:
    """(key, path) of every listed font file that is installed."""
    return [
        (k, FONT_DIR / f) for k, files in FONTS.items() for f in files if (FONT_DIR / f).is_file()
    ]


def font_mask(digit: int, path: Path, rng: np.random.Generator) -> Image.Image:
    """Digit glyph as an 'L' ink mask (255 = ink), tightly cropped, about 200 px tall."""
    font = ImageFont.truetype(str(path), 200)
    im = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(im).text((100, 60), str(digit), font=font, fill=255)
    im = im.crop(im.getbbox())
    grow = int(rng.choice([0, 0, 0, 1, 2, 3]))  # thicker pen: dilate the glyph...
    thick = im.filter(ImageFilter.MaxFilter(2 * grow + 1)) if grow else im
    # ...unless that fills the loops of an already bold glyph (ink > 30% of its box)
    return thick if np.asarray(thick).mean() < 0.3 * 255 else im


def catmull_rom(pts: np.ndarray, n: int = 10) -> np.ndarray:
    """Smooth curve through all points (uniform Catmull-Rom, end points repeated)."""
    p = np.vstack([pts[:1], pts, pts[-1:]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    return np.vstack(out + [pts[-1:]])


def stroke_mask(digit: int, rng: np.random.Generator) -> Image.Image:
    """Digit drawn with a round brush from a jittered stroke template, as an 'L' ink mask."""
    size = 240
    variants = TEMPLATES[digit]
    strokes = variants[rng.integers(len(variants))]
    # Whole-digit jitter: slant (shear), width, then per-control-point wobble.
    shear, sx = rng.uniform(-0.12, 0.12), rng.uniform(0.8, 1.15)
    wobble = rng.uniform(0.01, 0.03)
    width = int(rng.uniform(0.035, 0.13) * size)
    return brush(jitter(strokes, rng, shear, sx, wobble), size, width)


def jitter(strokes, rng: np.random.Generator, shear: float, sx: float, wobble: float) -> list:
    """Template strokes slanted, widened and wobbled, curves smoothed: point arrays (unit box).

    One random offset per distinct template point, so that joints (where two strokes meet or
    where the curve of an 8 crosses itself) stay joined after the jitter."""
    offset = {pt: rng.normal(0, wobble, 2) for _, pts in strokes for pt in pts}
    out = []
    for kind, pts in strokes:
        p = np.array([np.add(pt, offset[pt]) for pt in pts])
        p[:, 0] = 0.5 + (p[:, 0] - 0.5) * sx - shear * (p[:, 1] - 0.5)
        out.append(catmull_rom(p) if kind == "c" else p)
    return out


def brush(paths: list, size: int, width: int, round_joints: bool = False) -> Image.Image:
    """Unit-box point arrays drawn `size` pixels to the unit with a round brush: 'L' ink mask.
    `round_joints` stamps the brush at every point too (wide brushes otherwise leave slits
    between the segments of a curve)."""
    im = Image.new("L", (size + 120, size + 120), 0)
    draw = ImageDraw.Draw(im)
    for p in paths:
        xy = [(60 + x * size, 60 + y * size) for x, y in p]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in xy if round_joints else (xy[0], xy[-1]):  # round brush ends
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return im.crop(im.getbbox())


def rotate(mask: Image.Image, digit: int, rng: np.random.Generator) -> Image.Image:
    """Rotate by up to 15 degrees; 1 and 7 only by 7 (a tilted bare stick reads as "/", and a
    7 with a short bar turned anticlockwise as a 1 with a flag)."""
    tilt = 7 if digit in (1, 7) else 15
    mask = mask.rotate(rng.uniform(-tilt, tilt), resample=Image.BICUBIC, expand=True)
    return mask.crop(mask.getbbox())


def place(
    mask: Image.Image,
    w: int,
    h: int,
    rng: np.random.Generator,
    aliased: bool = False,
    span: tuple[float, float] = (0.2, 0.8),
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Scale to 20-80% (`span`) of the canvas and put it off-centre: mask in 0..1 and its bbox."""
    lo = max(span[0], 18 / min(w, h))  # never smaller than ~18 px: must stay readable
    th = int(rng.uniform(lo, max(lo, span[1])) * min(w, h))
    tw = max(1, round(mask.width * th / mask.height))
    if tw > w - 4:
        tw, th = w - 4, round(mask.height * (w - 4) / mask.width)
    mask = mask.resize((tw, th), Image.LANCZOS)
    x0, y0 = int(rng.integers(2, w - tw - 1)), int(rng.integers(2, h - th - 1))
    out = np.zeros((h, w), np.float32)
    out[y0 : y0 + th, x0 : x0 + tw] = np.asarray(mask, np.float32) / 255
    if aliased:  # drawing apps without anti-aliasing (MS Paint pencil)
        out = (out > 0.5).astype(np.float32)
    return out, (x0, y0, x0 + tw, y0 + th)


def canvas_size(rng: np.random.Generator, long_max: int) -> tuple[int, int]:
    """Random (w, h): square, portrait or landscape, long side between 64 and long_max."""
    long = int(rng.uniform(64, long_max))
    ratio = rng.choice([1.0, 1.0, 0.75, 4 / 3, 0.6, 1.5])
    return (long, max(48, int(long * ratio))) if ratio <= 1 else (max(48, int(long / ratio)), long)


def paper_colour(rng: np.random.Generator) -> np.ndarray:
    """Off-white, greyish or yellowish paper (RGB)."""
    base = [(246, 245, 240), (232, 232, 230), (214, 214, 210), (245, 238, 205), (238, 232, 220)]
    return np.array(base[rng.integers(len(base))], np.float32) + rng.uniform(-6, 6, 3)


def lighting(w: int, h: int, rng: np.random.Generator, darkest: float) -> np.ndarray:
    """Smooth multiplicative light field: a linear shadow across the page plus vignetting."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = np.cos(a) * xx / w + np.sin(a) * yy / h
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    field = 1 - (1 - rng.uniform(darkest, 1.0)) * t
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2
    return field * (1 - rng.uniform(0, 0.15) * r2)


def texture(w: int, h: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Paper texture: blotchy low-frequency noise plus fine grain, zero-mean, in grey levels."""
    small = Image.fromarray(
        rng.normal(128, 40, (h // 16 + 2, w // 16 + 2)).clip(0, 255).astype(np.uint8)
    )
    blotch = np.asarray(small.resize((w, h), Image.BICUBIC), np.float32) - 128
    return amount * (0.5 * blotch / 40 + rng.normal(0, 1, (h, w)))


def ruled_lines(img: np.ndarray, rng: np.random.Generator) -> None:
    """Faint ruled (or squared) notebook lines, blended into the paper in place."""
    h, w = img.shape[:2]
    gap = max(8, int(rng.uniform(0.08, 0.16) * h))
    colour = np.array([(150, 170, 215), (170, 170, 170)][rng.integers(2)], np.float32)
    alpha = rng.uniform(0.2, 0.4)
    rows = np.arange(int(rng.integers(gap)), h, gap)
    img[rows] = img[rows] * (1 - alpha) + colour * alpha
    if rng.random() < 0.3:  # squared paper: fainter columns too
        cols = np.arange(int(rng.integers(gap)), w, gap)
        img[:, cols] = img[:, cols] * (1 - alpha / 2) + colour * alpha / 2


def specks(img: np.ndarray, bbox: tuple, rng: np.random.Generator, colour: np.ndarray) -> None:
    """A few small dots (dust, pencil marks) well away from the digit, drawn in place."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = bbox
    m = 0.1 * min(w, h) + 4
    for _ in range(int(rng.integers(1, 7))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if x0 - m < x < x1 + m and y0 - m < y < y1 + m:
            continue
        r = rng.uniform(0.6, 1.8)
        yy, xx = np.ogrid[0:h, 0:w]
        d = np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0, 1)[..., None] * rng.uniform(0.3, 0.8)
        img[:] = img * (1 - d) + colour * d


def ink(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float) -> np.ndarray:
    """Composite ink of the given colour over the background through the 0..1 mask."""
    a = (mask * opacity)[..., None]
    return img * (1 - a) + colour * a


def make_photo(mask: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Phone photo of dark ink on paper: lighting, texture, lines, specks, blur (JPEG)."""
    w, h = canvas_size(rng, 320)
    m, bbox = place(mask, w, h, rng)
    img = np.broadcast_to(paper_colour(rng), (h, w, 3)).copy()
    if rng.random() < 0.35:
        ruled_lines(img, rng)
    pens = [(25, 25, 30), (35, 45, 125), (20, 30, 80), (80, 80, 85)]
    colour = np.array(pens[rng.integers(len(pens))], np.float32)
    img = ink(img, m, colour, rng.uniform(0.85, 1.0))
    if rng.random() < 0.5:
        specks(img, bbox, rng, colour)
    img = img * lighting(w, h, rng, 0.6)[..., None]
    img += texture(w, h, rng, rng.uniform(1, 5))[..., None]
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.9 if min(w, h) > 100 else 0.5)))


def make_board(mask: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Photo of chalk on a blackboard/greenboard: light, slightly patchy ink on dark (JPEG)."""
    w, h = canvas_size(rng, 320)
    m, bbox = place(mask, w, h, rng)
    boards = [(40, 58, 48), (35, 38, 40), (25, 45, 35)]
    img = np.broadcast_to(np.array(boards[rng.integers(3)], np.float32), (h, w, 3)).copy()
    img += texture(w, h, rng, 4)[..., None] * 1.5  # old chalk smudges
    patchy = 0.8 + 0.2 * rng.random((h, w))
    img = ink(img, m * patchy, np.array([235, 235, 228], np.float32), rng.uniform(0.8, 0.95))
    img = img * lighting(w, h, rng, 0.75)[..., None]
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.7)))


def make_drawing(mask: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Drawing-app export: flat background, crisp ink; 30% light ink on black (PNG)."""
    w, h = canvas_size(rng, 500)
    m, _ = place(mask, w, h, rng, aliased=rng.random() < 0.25)
    if rng.random() < 0.3:
        bg = [(0, 0, 0), (30, 30, 30), (20, 25, 60)][rng.integers(3)]
        fg = [(255, 255, 255), (250, 230, 80)][rng.integers(2)]
    else:
        bg, fg = (255, 255, 255), [(0, 0, 0), (20, 60, 200), (200, 30, 30)][rng.integers(3)]
    img = np.broadcast_to(np.array(bg, np.float32), (h, w, 3)).copy()
    img = ink(img, m, np.array(fg, np.float32), 1.0)
    return Image.fromarray(img.round().astype(np.uint8))


def make_rgba(mask: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Transparent-background PNG with opaque ink; hidden colour is black or white."""
    w, h = canvas_size(rng, 500)
    m, _ = place(mask, w, h, rng, aliased=rng.random() < 0.2)
    fg = [(0, 0, 0), (0, 0, 0), (25, 50, 180), (190, 20, 20)][rng.integers(4)]
    hidden = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)  # RGB under alpha=0
    rgb = np.where(m[..., None] > 0, np.array(fg), np.array(hidden)).astype(np.uint8)
    alpha = (m * 255).round().astype(np.uint8)[..., None]
    return Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA")


STYLES = {
    "photo": (make_photo, 0.5),
    "drawing": (make_drawing, 0.25),
    "board": (make_board, 0.1),
    "rgba": (make_rgba, 0.15),
}


def save(im: Image.Image, style: str, stem: Path, rng: np.random.Generator) -> Path:
    """Photos -> JPEG q60-90, others -> PNG; a third of the non-RGBA ones in greyscale."""
    if style != "rgba" and rng.random() < 0.33:
        im = im.convert("L")
    if style in ("photo", "board"):
        path = stem.with_suffix(".jpg")
        im.save(path, quality=int(rng.integers(60, 91)))
    else:
        path = stem.with_suffix(".png")
        im.save(path, optimize=True)
    return path


# Kinds of image that real users' digits hold and the styles above do not (issue 21): each
# comes from its own RNG streams, (seed, KIND_STREAM + kind's position, index), so adding or
# changing one leaves every other image as it was.
KIND_STREAM = 100


def rotated(paths: list, degrees: float) -> list:
    """Unit-box point arrays turned about the box's centre."""
    a = np.radians(degrees)
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return [(p - 0.5) @ turn + 0.5 for p in paths]


def template_paths(digit: int, rng: np.random.Generator, wobble: float = 0.02) -> list:
    """A randomly chosen template of `digit`, jittered and turned by up to 8 degrees."""
    variants = TEMPLATES[digit]
    strokes = variants[rng.integers(len(variants))]
    paths = jitter(strokes, rng, rng.uniform(-0.12, 0.12), rng.uniform(0.85, 1.15), wobble)
    return rotated(paths, rng.uniform(-8, 8) if digit not in (1, 7) else rng.uniform(-4, 4))


def euro_one(rng: np.random.Generator, base: bool = False) -> list:
    """A European 1: a long up-stroke flag (straight or curved) rising to the top of the stem,
    and a base serif half of the time, or always with `base` (unit box)."""
    stem = rng.uniform(0.5, 0.62)
    flag = (stem - rng.uniform(0.2, 0.42), rng.uniform(0.18, 0.45))
    if rng.random() < 0.3:
        bend = (stem - 0.45 * (stem - flag[0]), 0.04 + 0.3 * (flag[1] - 0.04))
        strokes = [("c", [flag, bend, (stem, 0.04)]), ("l", [(stem, 0.04), (stem, 0.96)])]
    else:
        strokes = [("l", [flag, (stem, 0.04), (stem, 0.96)])]
    if rng.random() < 0.5 or base:
        half = rng.uniform(0.15, 0.28)
        strokes.append(("l", [(stem - half, 0.96), (stem + half * rng.uniform(0.8, 1.2), 0.96)]))
    return strokes


def paper_photo(
    m: np.ndarray,
    rng: np.random.Generator,
    paper: np.ndarray,
    pen: np.ndarray,
    opacity: float,
    darkest: float,
    blur: float,
) -> Image.Image:
    """Ink through the 0..1 mask on paper, under a light field, with texture and blur."""
    h, w = m.shape
    img = np.broadcast_to(paper, (h, w, 3)).copy()
    img = ink(img, m, pen, opacity)
    img = img * lighting(w, h, rng, darkest)[..., None]
    img += texture(w, h, rng, rng.uniform(1, 6))[..., None]
    return Image.fromarray(img.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))


def save_kind(im: Image.Image, stem: Path, rng: np.random.Generator, jpeg: bool) -> Path:
    """JPEG q55-85 or PNG; a third of the RGB ones in greyscale."""
    if im.mode == "RGB" and rng.random() < 0.33:
        im = im.convert("L")
    path = stem.with_suffix(".jpg" if jpeg else ".png")
    if jpeg:
        im.save(path, quality=int(rng.integers(55, 86)))
    else:
        im.save(path, optimize=True)
    return path


def make_small1px(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A digit drawn at its final small size (24-40 px) with a 1-pixel pencil, aliased or
    anti-aliased, either polarity: a drawing made in a tiny canvas (PNG)."""
    digit = i % 10
    paths = template_paths(digit, rng)
    w = int(rng.choice([28, 28, 28, 24, 32, 36, 40]))
    h = w if rng.random() < 0.7 else int(w * rng.uniform(0.8, 1.2))
    height = rng.uniform(0.62, 0.9) * min(w, h)
    centre = (rng.uniform(0.42, 0.58) * w, rng.uniform(0.44, 0.56) * h)
    zoom = 1 if rng.random() < 0.6 else 4  # 4: drawn large with a 4-px pen, then reduced
    im = Image.new("L", (w * zoom, h * zoom), 0)
    draw = ImageDraw.Draw(im)
    for p in paths:
        xy = [(zoom * (centre[0] + (x - 0.5) * height), zoom * (centre[1] + (y - 0.5) * height))
              for x, y in p]
        draw.line(xy, fill=255, width=zoom, joint="curve" if zoom > 1 else None)
    m = np.asarray(im.resize((w, h), Image.Resampling.BOX), np.float32) / 255
    if rng.random() < 0.55:
        bg, fg = (255, 255, 255), [(0, 0, 0), (0, 0, 0), (30, 40, 200)][rng.integers(3)]
    else:
        bg, fg = (0, 0, 0), (255, 255, 255)
    img = ink(np.broadcast_to(np.array(bg, np.float32), (h, w, 3)).copy(), m, np.array(fg), 1.0)
    return digit, "stroke", Image.fromarray(img.round().astype(np.uint8)), rng.random() < 0.25


def thick_enough(mask: Image.Image, share: float) -> Image.Image:
    """The glyph dilated until its mean stroke width is `share` of its height."""
    for _ in range(12):
        a = np.asarray(mask) > 127
        edge = a & ~np.pad(a, 1)[2:, 1:-1] | a & ~np.pad(a, 1)[:-2, 1:-1]
        edge |= a & ~np.pad(a, 1)[1:-1, 2:] | a & ~np.pad(a, 1)[1:-1, :-2]
        if 2 * a.sum() / max(edge.sum(), 1) >= share * mask.height:
            break
        mask = mask.filter(ImageFilter.MaxFilter(5))
    return mask


def make_mnistlike(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A 28x28 image already made like MNIST (digit fitted to about 20x20, anti-aliased,
    centred by mass to within a pixel): what an MNIST-style drawing pad exports."""
    digit = i % 10
    if fonts and rng.random() < 0.5:
        key, path = fonts[rng.integers(len(fonts))]
        source, mask = f"font-{key}", font_mask(digit, path, rng)
    else:
        paths = template_paths(digit, rng)
        source, mask = "stroke", brush(paths, 240, int(rng.uniform(0.1, 0.15) * 240), True)
    mask = thick_enough(rotate(mask, digit, rng), rng.uniform(0.1, 0.15))
    side = int(rng.integers(18, 21))
    scale = side / max(mask.size)
    size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
    small = np.asarray(mask.resize(size, Image.Resampling.LANCZOS), np.float32) / 255
    ys, xs = np.nonzero(small > 0)
    weights = small[ys, xs]
    cy, cx = (ys * weights).sum() / weights.sum(), (xs * weights).sum() / weights.sum()
    top = int(np.clip(round(14 - cy) + rng.integers(-1, 2), 1, 27 - size[1]))
    left = int(np.clip(round(14 - cx) + rng.integers(-1, 2), 1, 27 - size[0]))
    canvas = np.zeros((28, 28), np.float32)
    canvas[top : top + size[1], left : left + size[0]] = small.clip(0, 1)
    if rng.random() < 0.25:
        canvas = 1 - canvas
    im = Image.fromarray((canvas * 255).round().astype(np.uint8))
    return digit, source, im, bool(rng.random() < 0.25)


def ring(rng: np.random.Generator) -> Image.Image:
    """A thick 0 drawn with a marker: an ellipse outline or the 0 template, 16-26% of its
    height wide."""
    thickness = rng.uniform(0.16, 0.26)
    if rng.random() < 0.5:
        height, aspect = 240, rng.uniform(0.55, 0.85)
        im = Image.new("L", (int(height * aspect) + 20, height + 20), 0)
        width = int(thickness * height)
        ImageDraw.Draw(im).ellipse((10, 10, 10 + int(height * aspect), 10 + height),
                                   outline=255, width=width)
        return im.crop(im.getbbox())
    return brush(template_paths(0, rng, wobble=0.015), 240, int(thickness * 240), True)


def make_ringgrey(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A marker digit (mostly a thick 0) photographed on grey paper in poor light: a strong
    shadow across the page and often a soft darker patch (the phone's shadow); JPEG."""
    digit = 0 if i < 12 else (4, 6, 8, 9)[i % 4]
    if digit == 0:
        mask = ring(rng)
    else:
        width = int(rng.uniform(0.13, 0.17) * 240)
        mask = brush(template_paths(digit, rng, 0.015), 240, width, True)
    w, h = canvas_size(rng, 300)
    m, _ = place(rotate(mask, digit, rng), w, h, rng, span=(0.45, 0.85))
    grey = rng.uniform(105, 175)
    paper = np.array([grey, grey, grey * rng.uniform(0.92, 1.0)], np.float32)
    paper += rng.uniform(-5, 5, 3)
    pen = np.array([(20, 20, 25), (30, 35, 70), (45, 40, 40)][rng.integers(3)], np.float32)
    im = paper_photo(m, rng, paper, pen, rng.uniform(0.8, 0.95), rng.uniform(0.4, 0.7),
                     rng.uniform(0.3, 1.2))
    if rng.random() < 0.6:  # a soft shadow over part of the page
        yy, xx = np.mgrid[0:h, 0:w]
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.3, 0.7) * max(w, h)
        fall = np.clip(1 - np.hypot(xx - cx, yy - cy) / r, 0, 1) ** 0.7
        shade = 1 - rng.uniform(0.2, 0.45) * fall
        im = Image.fromarray((np.asarray(im, np.float32) * shade[..., None]).astype(np.uint8))
    return digit, "stroke", im, True


def any_glyph(digit: int, rng: np.random.Generator, fonts: list) -> tuple[str, Image.Image]:
    if fonts and rng.random() < 0.5:
        key, path = fonts[rng.integers(len(fonts))]
        return f"font-{key}", rotate(font_mask(digit, path, rng), digit, rng)
    paths = template_paths(digit, rng)
    return "stroke", brush(paths, 240, int(rng.uniform(0.05, 0.12) * 240), True)


def scaled(mask: Image.Image, height: int) -> np.ndarray:
    width = max(1, round(mask.width * height / mask.height))
    return np.asarray(mask.resize((width, height), Image.Resampling.LANCZOS), np.float32) / 255


def make_edgefragment(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """One digit cut from a row of them: part of a neighbour is clipped by the left or right
    edge (both, a fifth of the time), a gap away from the digit; a photo (JPEG) or a drawing
    (PNG)."""
    digit = i % 10
    source, mask = any_glyph(digit, rng, fonts)
    h = int(rng.uniform(70, 240))
    height = int(rng.uniform(0.45, 0.75) * h)
    main = scaled(mask, height)
    sides = ["left", "right"] if rng.random() < 0.2 else [["left", "right"][rng.integers(2)]]
    parts = {}
    for side in sides:
        frag = scaled(any_glyph(int(rng.integers(10)), rng, fonts)[1], height)
        seen = max(3, int(rng.uniform(0.15, 0.5) * frag.shape[1]))
        gap = max(3, int(rng.uniform(0.1, 0.3) * height))
        part = frag[:, -seen:] if side == "left" else frag[:, :seen]
        parts[side] = (part, gap, int(rng.integers(-height // 10, height // 10 + 1)))
    margin = [int(rng.uniform(0.1, 0.4) * height) for _ in range(2)]
    left = parts["left"][0].shape[1] + parts["left"][1] if "left" in parts else margin[0]
    right = parts["right"][0].shape[1] + parts["right"][1] if "right" in parts else margin[1]
    w = left + main.shape[1] + right
    m = np.zeros((h, w), np.float32)
    top = (h - height) // 2 + int(rng.integers(-h // 10, h // 10 + 1))
    m[top : top + height, left : left + main.shape[1]] = main
    for side, (part, _, shift) in parts.items():
        y = int(np.clip(top + shift, 0, h - height))
        x = 0 if side == "left" else w - part.shape[1]
        spot = (slice(y, y + height), slice(x, x + part.shape[1]))
        m[spot] = np.maximum(m[spot], part)
    if rng.random() < 0.7:
        pen = np.array([(25, 25, 30), (35, 45, 125), (80, 80, 85)][rng.integers(3)], np.float32)
        im = paper_photo(m, rng, paper_colour(rng), pen, rng.uniform(0.85, 1.0), 0.6,
                         rng.uniform(0, 0.8))
        return digit, source, im, True
    img = ink(np.full((h, w, 3), 255, np.float32), m, np.zeros(3, np.float32), 1.0)
    return digit, source, Image.fromarray(img.round().astype(np.uint8)), False


TINTED_PAPER = [(245, 236, 185), (246, 222, 226), (214, 228, 244), (222, 240, 214),
                (205, 205, 200), (214, 192, 152)]
BALLPOINT = [(40, 60, 150), (30, 40, 110), (40, 40, 50), (70, 40, 120)]


def ballpoint_photo(mask: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A blurry phone photo of thin ballpoint ink (uneven pressure) on tinted paper."""
    w, h = canvas_size(rng, 400)
    m, _ = place(mask, w, h, rng, span=(0.35, 0.75))
    small = rng.uniform(0.45, 1.0, (h // 24 + 2, w // 24 + 2)).astype(np.float32)
    pressure = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))
    paper = np.array(TINTED_PAPER[rng.integers(len(TINTED_PAPER))], np.float32)
    pen = np.array(BALLPOINT[rng.integers(len(BALLPOINT))], np.float32)
    blur = rng.uniform(0.008, 0.02) * min(w, h) + 0.5
    return paper_photo(m * pressure.clip(0, 1), rng, paper + rng.uniform(-6, 6, 3), pen,
                       rng.uniform(0.55, 0.85), rng.uniform(0.5, 0.85), blur)


def make_ballpoint(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """Ballpoint on tinted paper, photographed out of focus (JPEG)."""
    digit = i % 10
    paths = template_paths(digit, rng)
    mask = rotate(brush(paths, 240, int(rng.uniform(0.02, 0.045) * 240), True), digit, rng)
    return digit, "stroke", ballpoint_photo(mask, rng), True


def make_euro(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A European 1 (long flag, often a base serif): a photo, a ballpoint photo or a drawing."""
    shear, sx, wobble = rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.15), rng.uniform(0.01, 0.02)
    paths = rotated(jitter(euro_one(rng), rng, shear, sx, wobble), rng.uniform(-4, 4))
    style = ["photo", "ballpoint", "drawing"][i % 3]
    width = rng.uniform(0.025, 0.05) if style == "ballpoint" else rng.uniform(0.04, 0.12)
    mask = brush(paths, 240, int(width * 240), True)
    if style == "ballpoint":
        return 1, "stroke", ballpoint_photo(mask, rng), True
    if style == "photo":
        return 1, "stroke", make_photo(mask, rng), True
    return 1, "stroke", make_drawing(mask, rng), False


def faint_line(paths: list, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-box paths drawn with a 1-pixel pencil in a w x h canvas (0..1 mask): aliased at
    its size, or drawn 4x larger with a 4-pixel pen and reduced (anti-aliased)."""
    height = rng.uniform(0.6, 0.85) * min(w, h)
    centre = (rng.uniform(0.42, 0.58) * w, rng.uniform(0.44, 0.56) * h)
    zoom = 1 if rng.random() < 0.5 else 4
    im = Image.new("L", (w * zoom, h * zoom), 0)
    draw = ImageDraw.Draw(im)
    for p in paths:
        xy = [(zoom * (centre[0] + (x - 0.5) * height), zoom * (centre[1] + (y - 0.5) * height))
              for x, y in p]
        draw.line(xy, fill=255, width=zoom, joint="curve" if zoom > 1 else None)
    return np.asarray(im.resize((w, h), Image.Resampling.BOX), np.float32) / 255


def make_faint(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A 1-pixel light-grey line whose darkest pixel is only 10-20 grey levels below the
    paper: pencil on white (28x28 and larger), on grey paper in a gentle gradient, saved as
    JPEG, or with a little sensor noise."""
    digit = i % 10
    variant = ["white28", "white", "grey", "jpeg", "noise"][i % 5]
    side = {"white28": int(rng.choice([28, 28, 32, 40])), "jpeg": int(rng.uniform(40, 160))}.get(
        variant, int(rng.uniform(60, 220)))
    w, h = side, side if rng.random() < 0.6 else int(side * rng.uniform(0.8, 1.25))
    m = faint_line(template_paths(digit, rng), w, h, rng)
    depth = rng.uniform(10, 20)  # grey levels below the paper at the darkest
    paper = rng.uniform(238, 255) if variant != "grey" else rng.uniform(140, 200)
    field = np.full((h, w), paper, np.float32)
    if variant == "grey":  # a gentle slope of light across the page
        field *= np.linspace(1.0, rng.uniform(0.9, 0.97), w, dtype=np.float32)[None, :]
    tint = np.array([1.0, 1.0, 1.0] if rng.random() < 0.7 else [1.15, 1.0, 0.72], np.float32)
    tint /= tint @ np.array([0.299, 0.587, 0.114], np.float32)  # `depth` in luminance
    img = field[..., None] - depth * (m / max(m.max(), 1e-6))[..., None] * tint
    if variant in ("noise", "grey"):
        img = img + rng.normal(0, rng.uniform(1.0, 2.0), (h, w, 1))
    grey = Image.fromarray(img.round().clip(0, 255).astype(np.uint8))
    return digit, "stroke", grey, variant == "jpeg"


def binary_crop(mask: Image.Image, height: int, margin: int) -> np.ndarray:
    """A glyph scaled to `height`, thresholded to pure black and white, cropped to its ink
    with `margin` pixels of paper around it: what a segmentation tool exports. Ink is 1."""
    width = max(1, round(mask.width * height / mask.height))
    m = np.asarray(mask.resize((width, height), Image.Resampling.LANCZOS)) > 127
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    m = np.pad(m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], margin)
    return m


def bw_image(m: np.ndarray, dark_ink: bool) -> Image.Image:
    """A 0/1 ink mask as a black-and-white PNG-ready 'L' image of either polarity."""
    ink_value, paper = (0, 255) if dark_ink else (255, 0)
    return Image.fromarray(np.where(m, ink_value, paper).astype(np.uint8))


NARROW = {
    7: [("l", [(0.2, 0.06), (0.8, 0.06), (0.42, 0.96)])],
    1: [("l", [(0.3, 0.24), (0.56, 0.04), (0.56, 0.96)])],
}


def make_tightcrop(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A narrow 7 or 1 (marker or pen) thresholded to black and white and cropped to its ink,
    about 30-50 x 80-100 pixels: most touch all four edges, a few keep 1-3 pixels of paper;
    40% white on black (PNG)."""
    digit = (7, 7, 1)[i % 3]
    strokes = NARROW[digit]
    if digit == 1 and rng.random() < 0.4:  # a base serif
        strokes = [*strokes, ("l", [(0.4, 0.96), (0.72, 0.96)])]
    paths = jitter(strokes, rng, rng.uniform(-0.08, 0.08), rng.uniform(0.45, 0.8),
                   rng.uniform(0.005, 0.015))
    paths = rotated(paths, rng.uniform(-3, 3))
    mask = brush(paths, 240, int(rng.uniform(0.05, 0.12) * 240), True)
    dark = rng.random() < 0.6
    margin = 0 if rng.random() < 0.7 else int(rng.integers(1, 4))
    m = binary_crop(mask, int(rng.uniform(80, 100)), margin)
    return digit, "stroke", bw_image(m, dark), False


def make_tightblob(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A thresholded tight crop (as `make_tightcrop`) of any digit, with a blob of its
    neighbour in the row at the left or right edge: the neighbour's nearest stroke, cut by
    the crop's edge, 1-4 pixels from the digit (PNG)."""
    digit = i % 10
    paths = template_paths(digit, rng, 0.015)
    mask = brush(paths, 240, int(rng.uniform(0.06, 0.12) * 240), True)
    dark = rng.random() < 0.75
    height = int(rng.uniform(70, 100))
    m = binary_crop(mask, height, 0)
    h, w = m.shape
    neighbour = brush(template_paths(int(rng.integers(10)), rng, 0.015), 240,
                      int(rng.uniform(0.06, 0.12) * 240), True)
    part = binary_crop(neighbour, int(height * rng.uniform(0.8, 1.0)), 0)
    seen = max(3, int(rng.uniform(0.06, 0.14) * h))
    left = rng.random() < 0.5
    part = part[:, -seen:] if left else part[:, :seen]
    gap = int(rng.integers(1, 5))
    out = np.zeros((h, w + gap + seen), bool)
    top = int(rng.integers(0, max(1, h - part.shape[0] + 1)))
    part = part[: h - top]
    if left:
        out[:, gap + seen :] = m
        out[top : top + part.shape[0], :seen] = part
    else:
        out[:, :w] = m
        out[top : top + part.shape[0], w + gap :] = part
    return digit, "stroke", bw_image(out, dark), False


def closed_four(rng: np.random.Generator) -> list:
    """A 4 drawn as a closed triangle with a crossbar: a diagonal from the stem's top down to
    the left, the bar across past the stem, and the stem from the apex to the base (unit
    box); the stem sometimes starts a little above the apex."""
    stem = rng.uniform(0.55, 0.68)
    bar = rng.uniform(0.52, 0.7)
    left = rng.uniform(0.1, 0.3)
    apex = (stem + rng.uniform(-0.03, 0.01), 0.04)
    beyond = stem + rng.uniform(0.05, 0.22)
    top = 0.04 - (rng.uniform(0.0, 0.06) if rng.random() < 0.4 else 0.0)
    return [("l", [apex, (left, bar), (beyond, bar)]), ("l", [(stem, top), (stem, 0.97)])]


FELT_PENS = [(25, 25, 30), (30, 50, 150), (170, 30, 40), (30, 110, 60)]


def make_closedfour(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """Closed-top 4s photographed: ballpoint or fine pen on grey paper, or felt pen (thick) on
    tinted paper (JPEG)."""
    shear, sx, wobble = rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.15), rng.uniform(0.01, 0.02)
    paths = rotated(jitter(closed_four(rng), rng, shear, sx, wobble), rng.uniform(-8, 8))
    felt = i % 2 == 1
    width = rng.uniform(0.08, 0.14) if felt else rng.uniform(0.025, 0.055)
    mask = brush(paths, 240, int(width * 240), True)
    w, h = canvas_size(rng, 360)
    m, _ = place(mask, w, h, rng, span=(0.35, 0.8))
    if felt:
        paper = np.array(TINTED_PAPER[rng.integers(len(TINTED_PAPER))], np.float32)
        pen = np.array(FELT_PENS[rng.integers(len(FELT_PENS))], np.float32)
        opacity = rng.uniform(0.8, 0.95)
    else:
        grey = rng.uniform(100, 195)
        paper = np.array([grey, grey, grey * rng.uniform(0.93, 1.0)], np.float32)
        pen = np.array(BALLPOINT[rng.integers(len(BALLPOINT))], np.float32)
        opacity = rng.uniform(0.45, 0.9)
    im = paper_photo(m, rng, paper + rng.uniform(-5, 5, 3), pen, opacity, rng.uniform(0.5, 0.9),
                     rng.uniform(0.3, 1.2))
    return 4, "stroke", im, True


def make_phonebig(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A full-size phone photo (1000-1900 pixels a side, 4:3 either way) of a small digit
    (4-12% of the short side) in marker or ballpoint on paper, in uneven light, slightly out
    of focus; a closed-top 4 for every 4 (JPEG at moderate quality)."""
    digit = i % 10
    if digit == 4:
        shear, sx = rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.15)
        paths = rotated(jitter(closed_four(rng), rng, shear, sx, 0.015), rng.uniform(-8, 8))
    else:
        paths = template_paths(digit, rng)
    marker = i % 2 == 0
    width = rng.uniform(0.07, 0.12) if marker else rng.uniform(0.025, 0.045)
    mask = brush(paths, 240, int(width * 240), True)
    long = int(rng.uniform(1000, 1900))
    w, h = (long, long * 3 // 4) if rng.random() < 0.5 else (long * 3 // 4, long)
    height = int(rng.uniform(0.04, 0.12) * min(w, h))
    glyph = scaled(mask, height)
    m = np.zeros((h, w), np.float32)
    y = int(rng.uniform(0.2, 0.8) * (h - height))
    x = int(rng.uniform(0.2, 0.8) * (w - glyph.shape[1]))
    m[y : y + height, x : x + glyph.shape[1]] = glyph
    paper = paper_colour(rng)
    pen = np.array([(25, 25, 30), (30, 40, 120), (40, 60, 150)][rng.integers(3)], np.float32)
    img = np.broadcast_to(paper, (h, w, 3)).copy()
    img = ink(img, m, pen, rng.uniform(0.8, 0.95) if marker else rng.uniform(0.6, 0.85))
    img = img * lighting(w, h, rng, 0.7)[..., None]
    img += rng.normal(0, 1.2, (h, w, 1)).astype(np.float32)  # what a phone's denoiser leaves
    im = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    return digit, "stroke", im.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 2.0))), True


def make_flagbase(i: int, rng: np.random.Generator, fonts: list) -> tuple:
    """A 1 with a flag and a base serif, always both: a photo, a ballpoint photo or a
    drawing."""
    strokes = euro_one(rng, base=True)
    shear, sx, wobble = rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.15), rng.uniform(0.01, 0.02)
    paths = rotated(jitter(strokes, rng, shear, sx, wobble), rng.uniform(-4, 4))
    style = ["photo", "ballpoint", "drawing"][i % 3]
    width = rng.uniform(0.025, 0.05) if style == "ballpoint" else rng.uniform(0.04, 0.12)
    mask = brush(paths, 240, int(width * 240), True)
    if style == "ballpoint":
        return 1, "stroke", ballpoint_photo(mask, rng), True
    if style == "photo":
        return 1, "stroke", make_photo(mask, rng), True
    return 1, "stroke", make_drawing(mask, rng), False


KINDS = {
    "small1px": make_small1px,
    "mnistlike": make_mnistlike,
    "ringgrey": make_ringgrey,
    "edgefragment": make_edgefragment,
    "ballpoint": make_ballpoint,
    "euro": make_euro,
    "faint": make_faint,
    "tightcrop": make_tightcrop,
    "tightblob": make_tightblob,
    "closedfour": make_closedfour,
    "phonebig": make_phonebig,
    "flagbase": make_flagbase,
}


# Images of each added kind by default (--per-kind overrides them all).
KIND_COUNTS = {kind: 20 for kind in KINDS} | {"tightblob": 15, "phonebig": 10, "flagbase": 12}


def make_kinds(out: Path, kinds: list[str], per_kind: int | None, seed: int, fonts: list,
               counts: Counter) -> None:
    """The images of the added `kinds`, each from its own RNG streams."""
    for k, (kind, make) in enumerate(KINDS.items()):
        if kind not in kinds:
            continue
        for i in range(per_kind if per_kind is not None else KIND_COUNTS[kind]):
            rng = np.random.default_rng([seed, KIND_STREAM + k, i])
            digit, source, im, jpeg = make(i, rng, fonts)
            save_kind(im, out / f"{digit}_{source}_{kind}_{i:04d}", rng, jpeg)
            counts[kind] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/data/user_digits"))
    ap.add_argument("--per-digit", type=int, default=30)
    ap.add_argument("--per-kind", type=int, default=None,
                    help="images of each added kind (default: KIND_COUNTS)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--kinds", help="comma-separated added kinds to (re)make alone, replacing "
                    "only their images (the font images need the fonts; these kinds do not)")
    args = ap.parse_args()
    fonts = available_fonts()
    print(f"{len(fonts)} font files found: {sorted({k for k, _ in fonts})}")
    args.out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    if args.kinds:
        kinds = args.kinds.split(",")
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            ap.error(f"unknown kinds {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        for kind in kinds:
            for old in [*args.out.glob(f"[0-9]_*_{kind}_*.png"),
                        *args.out.glob(f"[0-9]_*_{kind}_*.jpg")]:
                old.unlink()
        make_kinds(args.out, kinds, args.per_kind, args.seed, fonts, counts)
        print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        return
    for old in [*args.out.glob("[0-9]_*.png"), *args.out.glob("[0-9]_*.jpg")]:
        old.unlink()  # a previous run's images (names change with fonts and options)
    names, probs = list(STYLES), [p for _, p in STYLES.values()]
    for digit in range(10):
        for i in range(args.per_digit):
            rng = np.random.default_rng([args.seed, digit, i])
            if fonts and i % 2 == 0:  # half from fonts, half from own strokes
                key, path = fonts[rng.integers(len(fonts))]
                source, mask = f"font-{key}", font_mask(digit, path, rng)
            else:
                source, mask = "stroke", stroke_mask(digit, rng)
            style = names[rng.choice(len(names), p=probs)]
            im = STYLES[style][0](rotate(mask, digit, rng), rng)
            save(im, style, args.out / f"{digit}_{source}_{style}_{i:04d}", rng)
            counts[source.split("-")[0]] += 1
            counts[style] += 1
    make_kinds(args.out, list(KINDS), args.per_kind, args.seed, fonts, counts)
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
