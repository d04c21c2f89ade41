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
