"""Users' photos of clothing made the way Fashion-MNIST was: the product cut out of its
background, its longer side scaled to 28 pixels, centred, bright on black.

Fashion-MNIST's products fill the frame (MNIST's digits sit in a 20-pixel box) and are read
as shapes with texture, not strokes: no stroke matching, no blank-stroke rules, only the
background removed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import ImageError
from .preprocess import Prepared, border_values, crop_to_ink, fit_box, reduce_size, to_grey

SIZE = 28
MIN_CONTRAST = 0.08  # a product this faint against its background is no product


def prepare_product(image: Image.Image, label: str = "image") -> Prepared:
    """Any photo of one product -> uint8 [28, 28], Fashion-MNIST's layout; ImageError when
    it holds nothing but background."""
    if image.width < 4 or image.height < 4:
        raise ImageError(f"{label} is too small ({image.width}x{image.height}) to hold a product")
    grey = reduce_size(to_grey(image))
    background = float(np.median(border_values(grey)))
    # the product is what differs from the background; a light background (a photo on a
    # table, a shop's white) makes the product dark, and Fashion-MNIST's is bright on black
    away = np.abs(grey - background)
    if away.max() < MIN_CONTRAST:
        raise ImageError(f"no product found in {label}: the image is one flat tone")
    product = (1.0 - grey) if background > 0.5 else grey
    floor = (1.0 - background) if background > 0.5 else background
    product = np.clip((product - floor) / max(1e-6, 1.0 - floor), 0, 1)
    product = crop_to_ink(product, away >= MIN_CONTRAST)
    fitted = fit_box(product, SIZE)
    canvas = np.zeros((SIZE, SIZE))
    h, w = fitted.shape
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    canvas[top : top + h, left : left + w] = fitted
    return Prepared((canvas * 255).round().astype(np.uint8))
