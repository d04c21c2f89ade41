import torch

from snncli.augment import augment_batch

from conftest import synthetic_split


def test_augmentation_keeps_shape_and_type_and_changes_every_image():
    images = torch.from_numpy(synthetic_split(16, 0)[0])
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    changed = (out.int() - images.int()).abs().flatten(1).sum(1) > 0
    assert changed.all()


def test_augmentation_is_reproducible_with_a_generator():
    images = torch.from_numpy(synthetic_split(8, 1)[0])
    a = augment_batch(images, torch.Generator().manual_seed(5))
    b = augment_batch(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_no_change_asked_means_no_change():
    images = torch.from_numpy(synthetic_split(8, 2)[0])
    same = augment_batch(images, degrees=0, scale=(1, 1), shift=0, stroke_change=0)
    assert (same.int() - images.int()).abs().max() <= 1  # resampling on the same grid


def test_digits_stay_in_view_and_keep_most_ink():
    images = torch.from_numpy(synthetic_split(64, 3)[0])
    out = augment_batch(images, torch.Generator().manual_seed(1), stroke_change=0)
    ratio = out.float().sum((1, 2)) / images.float().sum((1, 2))
    assert ratio.min() > 0.6 and ratio.max() < 1.5


def test_recipe_levels():
    from snncli.augment import augment_level

    images = torch.from_numpy(synthetic_split(32, 4)[0])
    assert augment_level(images, "none") is images
    light = augment_level(images, "light", torch.Generator().manual_seed(0))
    full = augment_level(images, "full", torch.Generator().manual_seed(0))
    assert light.shape == full.shape == images.shape
    # light never changes stroke width, so the ink total moves less than under full
    def ink_change(out):
        return (out.float().sum((1, 2)) - images.float().sum((1, 2))).abs().mean()

    assert ink_change(light) < ink_change(full)


def test_shares_of_a_batch_get_the_draws_the_whole_batch_gives_them():
    """A data-parallel process augments its share of a batch as one process would."""
    images = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    whole = augment_batch(images, torch.Generator().manual_seed(3))
    for start, stop in [(0, 4), (4, 7), (7, 7)]:
        generator = torch.Generator().manual_seed(3)
        part = augment_batch(images[start:stop], generator, within=(start, 7))
        assert torch.equal(part, whole[start:stop])
        assert torch.rand(1, generator=generator) == torch.rand(
            1, generator=_after_batch_draws(7))  # the same draws consumed as the whole batch's


def _after_batch_draws(total: int) -> torch.Generator:
    generator = torch.Generator().manual_seed(3)
    torch.rand(5, total, generator=generator)
    return generator


def test_mirror_flips_about_half_the_images_exactly_and_changes_nothing_else():
    from snncli.augment import augment_level

    images = torch.randint(0, 256, (200, 28, 28), dtype=torch.uint8)
    out = augment_level(images, "mirror", torch.Generator().manual_seed(0))
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    assert (same | flipped).all()  # every image exactly itself or its mirror image
    assert 70 <= int(flipped.sum()) <= 130


def test_levels_without_mirror_draw_as_before():
    """Mirroring draws a sixth row only when asked: the other levels' random streams, and
    so the runs of existing recipes, are unchanged."""
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(3)
    augment_batch(images, generator)
    assert torch.rand(1, generator=generator) == torch.rand(1, generator=_after_batch_draws(5))


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`image` moved by whole pixels, zeros moved in."""
    out = torch.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_clothing_moves_by_whole_pixels_mirrors_and_blanks_a_rectangle():
    """Every image is itself or its mirror image moved by -2..2 whole pixels each way (no
    resampling), with at most a rectangle of it blanked; each of the 25 moves and both sides
    occur."""
    from snncli.augment import augment_level

    images = torch.randint(1, 256, (300, 28, 28), dtype=torch.uint8)  # no pixel is 0
    out = augment_level(images, "clothing", torch.Generator().manual_seed(0))
    moves, flips, blanked = set(), 0, 0
    for image, result in zip(images, out, strict=True):
        kept = result != 0
        match = [(flip, dy, dx) for flip in (False, True) for dy in range(-2, 3)
                 for dx in range(-2, 3)
                 if torch.equal(result[kept], _shifted(image.flip(-1) if flip else image,
                                                       dy, dx)[kept])
                 and torch.equal(kept, _shifted(torch.ones_like(image), dy, dx).bool() & kept)]
        assert len(match) == 1
        flip, dy, dx = match[0]
        moves.add((dy, dx))
        flips += flip
        blanked += int((~kept).sum()) > int((_shifted(torch.ones_like(image), dy, dx) == 0).sum())
    assert len(moves) == 25
    assert 110 <= flips <= 190 and 110 <= blanked <= 190


def test_erasing_blanks_one_rectangle_of_2_to_20_percent_in_about_half():
    images = torch.randint(1, 256, (400, 28, 28), dtype=torch.uint8)
    out = augment_batch(images, torch.Generator().manual_seed(1), degrees=0, scale=(1, 1),
                        shift=0, stroke_change=0, erase=0.5)
    blank = out == 0
    erased = blank.flatten(1).any(1)
    assert 160 <= int(erased.sum()) <= 240
    assert torch.equal(out[~blank], images[~blank])  # nothing else changed
    for mask in blank[erased]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert int(mask.sum()) == height * width  # one filled rectangle
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        assert 0.01 * 784 <= height * width <= 0.22 * 784  # 2-20%, after rounding the sides


def test_erasing_draws_after_the_other_rows():
    """The rows of random numbers the other changes use are drawn first, as without erasing:
    erasing adds its own after them."""
    images = torch.randint(1, 256, (6, 28, 28), dtype=torch.uint8)
    plain = augment_batch(images, torch.Generator().manual_seed(2), mirror=0.5)
    with_erasing = augment_batch(images, torch.Generator().manual_seed(2), mirror=0.5,
                                 erase=0.5)
    kept = with_erasing != 0
    assert torch.equal(plain[kept], with_erasing[kept])
