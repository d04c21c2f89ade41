"""Digit styles that MNIST hardly holds, drawn from stroke templates for training.

MNIST's writers were mostly American: its 1s are bare sticks and its 7s uncrossed. Many users
write a 1 with a long up-stroke flag and often a base serif, and cross their 7s; a model that
never saw those reads such a 1 as a 7, 4 or 2. Others close the top of their 4 into a
triangle, which a model reads as a 9 or a 1. `style_digits` draws these forms with a round
pen from jittered templates (random slant, width, flag length, pen width) and makes each one
the way MNIST's digits were made (cropped, fitted to 20x20, centred by mass in 28x28), so
training can add them beside MNIST's own (the recipe setting `styles`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .preprocess import centre_by_mass, crop_to_ink, fit_box

CANVAS = 160  # drawing size in pixels; the unit box of a template spans the middle 100


def _european_one(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """A stem with a long flag rising to its top (x right, y down, unit box); a base serif
    half of the time."""
    stem_x = rng.uniform(0.5, 0.62)
    flag = rng.uniform(0.25, 0.45)  # how far left the flag starts
    drop = rng.uniform(0.15, 0.4)  # how far down
    strokes = [[(stem_x - flag, drop), (stem_x, 0.0), (stem_x, 1.0)]]
    if rng.random() < 0.5:
        half = rng.uniform(0.18, 0.3)
        strokes.append([(stem_x - half, 1.0), (stem_x + half, 1.0)])
    return strokes


def _crossed_seven(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """A top bar, a diagonal down to the base and a bar across its middle; a small hook at
    the bar's left end a third of the time."""
    left, right = rng.uniform(0.15, 0.3), rng.uniform(0.72, 0.85)
    foot = rng.uniform(0.35, 0.55)
    strokes = [[(left, 0.0), (right, 0.0), (foot, 1.0)]]
    if rng.random() < 1 / 3:
        strokes[0].insert(0, (left - 0.02, rng.uniform(0.08, 0.15)))
    height = rng.uniform(0.45, 0.6)
    across = right + (foot - right) * height  # the diagonal's x at that height
    half = rng.uniform(0.15, 0.25)
    strokes.append([(across - half, height), (across + half, height)])
    return strokes


def _closed_four(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """A 4 drawn as a closed triangle: a diagonal from the stem's top down to the left, the
    crossbar back across past the stem, and the stem from the top to the base; the triangle
    narrow or wide, the stem sometimes starting a little above the apex."""
    stem = rng.uniform(0.55, 0.7)
    bar = rng.uniform(0.5, 0.72)
    corner = (rng.uniform(0.05, 0.4), bar)
    beyond = (stem + rng.uniform(0.05, 0.25), bar + rng.uniform(-0.03, 0.03))
    top = -rng.uniform(0.0, 0.06) if rng.random() < 0.4 else 0.0
    return [[(stem, 0.0), corner, beyond], [(stem, top), (stem, 1.0)]]


STYLES = {1: _european_one, 7: _crossed_seven}
# Styles added later draw from RNG streams of their own, so that the digits of the styles
# above come out for a seed as they did before (one in every len(ALL_STYLES) places).
LATER_STYLES = {4: _closed_four}
ALL_STYLES = [*STYLES, *LATER_STYLES]


def draw_strokes(strokes, rng: np.random.Generator) -> np.ndarray:
    """Strokes (unit box) drawn with a round pen after a random slant, width and wobble:
    float [H, W] in 0-1, cropped to the ink."""
    slant, widen = rng.uniform(-0.15, 0.15), rng.uniform(0.75, 1.15)
    pen = rng.uniform(0.07, 0.14) * 100
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        points = np.array(stroke) + rng.normal(0, 0.015, (len(stroke), 2))
        x = 0.5 + (points[:, 0] - 0.5) * widen - slant * (points[:, 1] - 0.5)
        xy = [(30 + a * 100, 30 + b * 100) for a, b in zip(x, points[:, 1], strict=True)]
        draw.line(xy, fill=255, width=round(pen), joint="curve")
        for a, b in (xy[0], xy[-1]):  # round pen ends
            draw.ellipse((a - pen / 2, b - pen / 2, a + pen / 2, b + pen / 2), fill=255)
    return crop_to_ink(np.asarray(image, dtype=np.float64) / 255)


def style_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` MNIST-like uint8 [count, 28, 28] digits of the styles above (1s, 7s and
    closed 4s in turn) and their labels; the same for the same seed. The 1s and 7s are drawn
    from the seed's RNG in the order they always were, each later style from its own."""
    rng = np.random.default_rng(seed)
    later = {label: np.random.default_rng([seed, label]) for label in LATER_STYLES}
    labels = np.array([ALL_STYLES[i % len(ALL_STYLES)] for i in range(count)], dtype=np.int64)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        draw = later.get(int(label), rng)
        make = LATER_STYLES.get(int(label)) or STYLES[int(label)]
        digit = fit_box(draw_strokes(make(draw), draw))
        images[i] = (centre_by_mass(digit) * 255).round().astype(np.uint8)
    return images, labels
