"""Train-time augmentation: for what preprocessing cannot undo in users' digits, and against
overfitting Fashion-MNIST.

Users' digits are slanted, a little off-centre, bigger or smaller and drawn with thinner or
thicker pens than MNIST's. Each image of a batch gets its own random rotation, scale, shift
and stroke width (clothing: mirroring, whole-pixel shifts and a blanked rectangle), on
whatever device the batch is on.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

# Parameters of augment_batch per recipe level. "light" moves digits the way MNIST's own vary
# (best for MNIST accuracy); "full" also rescales and changes stroke width, for users' images;
# "mirror" flips half the images left-right and nothing else: clothing looks the same
# mirrored (a digit does not: recipes refuse it for digit data sets). "clothing" also moves
# each image by whole pixels (up to 2 each way: nothing is resampled) and blanks a random
# rectangle in half of them (random erasing): the usual augmentation against overfitting
# Fashion-MNIST's 60,000 images, for longer runs than mirroring alone needs.
LEVELS = {
    "light": {"degrees": 8.0, "scale": (0.95, 1.05), "shift": 2.0, "stroke_change": 0.0},
    "full": {},
    "mirror": {"degrees": 0.0, "scale": (1.0, 1.0), "shift": 0.0, "stroke_change": 0.0,
               "mirror": 0.5},
    "clothing": {"degrees": 0.0, "scale": (1.0, 1.0), "shift": 2.0, "stroke_change": 0.0,
                 "mirror": 0.5, "whole_pixels": True, "erase": 0.5},
}
# Random erasing's rectangle: its share of the image and its height/width ratio (drawn
# log-uniformly, so tall and wide are equally likely).
ERASE_AREA = (0.02, 0.2)
ERASE_ASPECT = (0.3, 1 / 0.3)


def augment_level(images: torch.Tensor, level: str, generator=None,
                  within: tuple[int, int] | None = None) -> torch.Tensor:
    """augment_batch with the parameters of a recipe's level ("none" returns `images`)."""
    if level == "none":
        return images
    return augment_batch(images, generator, **LEVELS[level], within=within)


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    degrees: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
    shift: float = 2.0,
    stroke_change: float = 0.25,
    within: tuple[int, int] | None = None,
    mirror: float = 0.0,
    whole_pixels: bool = False,
    erase: float = 0.0,
) -> torch.Tensor:
    """uint8 [B, 28, 28] -> uint8 [B, 28, 28], each image randomly transformed.

    `stroke_change` is the chance of thickening (and, separately, of thinning) the strokes by
    about one pixel; `mirror` the chance of flipping an image left-right; `whole_pixels`
    rounds the shift to whole pixels; `erase` is the chance of blanking a random rectangle
    (ERASE_AREA, ERASE_ASPECT) after the other changes. `within` = (start,
    total): `images` are images start..start+B-1 of a batch of `total`, and get the random
    draws that batch would give them (a process of a data-parallel run augments its share of
    each batch as one process would).
    """
    b = images.shape[0]
    device = images.device
    start, total = within or (0, b)
    # All of a batch's random numbers in one draw (the same values as five draws of b, in
    # order; a sixth for mirroring, five more for erasing) and one copy: a GPU gets them
    # without waiting for its queue to empty.
    rows = 5 + bool(mirror) + 5 * bool(erase)
    draws = torch.rand(rows, total, generator=generator)[:, start : start + b].contiguous()
    if b == 0:  # drawn all the same: the generator advances as for the whole batch
        return images
    if device.type == "cuda":
        draws = draws.pin_memory()
    angle_u, zoom_u, tx_u, ty_u, pick, *more = draws.to(device, non_blocking=True)
    flip_u = more.pop(0) if mirror else None

    angle = _uniform(angle_u, -degrees, degrees) * math.pi / 180
    zoom = _uniform(zoom_u, *scale)
    if whole_pixels:  # -shift..shift, each equally likely
        tx_u, ty_u = (torch.round(_uniform(u, -shift - 0.5, shift + 0.5)) for u in (tx_u, ty_u))
    else:
        tx_u, ty_u = (_uniform(u, -shift, shift) for u in (tx_u, ty_u))
    tx, ty = tx_u * 2 / 28, ty_u * 2 / 28
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # x -> -x before the rotation: pixel centres land on pixel centres, so a mirrored image
    # is sampled exactly
    side = torch.where(flip_u < mirror, -1.0, 1.0) if mirror else torch.ones_like(cos)
    theta = torch.stack(
        [torch.stack([cos * side, -sin, tx], 1), torch.stack([sin * side, cos, ty], 1)], 1
    )  # output -> input sampling grid: mirror, rotation, 1/zoom, shift
    x = images.unsqueeze(1).float() / 255
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    thicker = (pick < stroke_change).view(b, 1, 1, 1)
    thinner = (pick > 1 - stroke_change).view(b, 1, 1, 1)
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=x.dtype, device=device)
    # Grey dilation/erosion with a 3x3 cross: max/min over the neighbourhood.
    patches = F.unfold(x, 3, padding=1).view(b, 9, 28, 28)
    mask = cross.flatten().view(1, 9, 1, 1).bool()
    dilated = patches.masked_fill(~mask, 0).amax(1, keepdim=True)
    eroded = patches.masked_fill(~mask, 1).amin(1, keepdim=True)
    # Thinning by a full pixel erases MNIST's thin strokes: blend half-way instead.
    x = torch.where(thicker, dilated, torch.where(thinner, (x + eroded) / 2, x))
    if erase:
        x = x.masked_fill(_erased(*more, chance=erase).unsqueeze(1), 0.0)
    return (x.squeeze(1) * 255).round().clamp(0, 255).to(torch.uint8)


def _uniform(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return u * (high - low) + low


def _erased(pick_u, area_u, aspect_u, top_u, left_u, chance: float,
            size: int = 28) -> torch.Tensor:
    """bool [B, size, size]: one random rectangle per image, for a share `chance` of them."""
    area = _uniform(area_u, *ERASE_AREA) * size * size
    aspect = torch.exp(_uniform(aspect_u, *(math.log(a) for a in ERASE_ASPECT)))
    height = torch.sqrt(area * aspect).round().clamp(1, size)
    width = torch.sqrt(area / aspect).round().clamp(1, size)
    top = torch.floor(top_u * (size - height + 1))
    left = torch.floor(left_u * (size - width + 1))
    rows = torch.arange(size, device=pick_u.device).view(1, size, 1)
    cols = torch.arange(size, device=pick_u.device).view(1, 1, size)

    def inside(index, start, extent):
        return (index >= start.view(-1, 1, 1)) & (index < (start + extent).view(-1, 1, 1))

    chosen = (pick_u < chance).view(-1, 1, 1)
    return chosen & inside(rows, top, height) & inside(cols, left, width)
