"""Digit styles MNIST hardly holds (European 1s, crossed 7s), added to training on request."""

import numpy as np
import torch
from scipy import ndimage

from snncli.data import Split
from snncli.styles import style_digits
from snncli.train_setup import with_styles


def test_style_digits_are_made_the_way_mnist_was():
    images, labels = style_digits(40, seed=3)
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [1, 7] * 20
    for image in images:
        rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22  # fitted to 20x20
        cy, cx = ndimage.center_of_mass(image.astype(float))
        assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
        assert image.max() > 200
    again, _ = style_digits(40, seed=3)
    other, _ = style_digits(40, seed=4)
    assert np.array_equal(images, again) and not np.array_equal(images, other)


def test_european_ones_have_a_flag_that_makes_them_wider_than_a_stick():
    images, labels = style_digits(60, seed=0)
    widths = [np.ptp(np.flatnonzero(image.any(0))) + 1 for image in images[labels == 1]]
    assert min(widths) >= 6 and np.median(widths) >= 8  # a bare stick is 2-4 pixels wide


def test_with_styles_appends_the_drawn_digits_to_the_training_split():
    split = Split(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10))
    assert with_styles(split, 0, seed=0) is split
    grown = with_styles(split, 6, seed=0)
    assert len(grown) == 16 and grown.labels[10:].tolist() == [1, 7, 1, 7, 1, 7]
    assert grown.images.dtype == torch.uint8 and int(grown.images[10:].max()) > 200
    assert grown.labels.dtype == split.labels.dtype
