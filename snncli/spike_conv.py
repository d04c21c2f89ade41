"""A 3x3 convolution of spikes (0/1 inputs) by table lookup, for fp32 on a CPU.

Its output at one position is a sum over 3x3 taps x C input channels of weight x input. With
0/1 inputs, the 8 channels of one group at one tap show one of 256 patterns, and what they add
to the O outputs is the sum of the weights of the channels that fired: a row of a table of
(9 taps x C/8 groups x 256 patterns) x O, built from the weights once per forward pass. Each
output position is then the sum of 9*C/8 table rows (`embedding_bag`, whose CPU kernel is
vectorised), not 9*C multiply-adds per output: for the csnn's conv2 (32 -> 64 channels) 36 row
additions instead of 288 multiply-adds, faster than oneDNN's fp32 convolution on a CPU at any
firing rate (benchmarks/README.md). The sums run in another order than a dense convolution's,
so results agree with it to float rounding (about 1e-6), not bit for bit.

The gradient of the spikes is the dense convolution's (oneDNN): the gradient of a lookup would
be a scatter over the table, far slower. The weight gradient is summed from the spikes when they
are sparse (`summed_weight_grad`): for each tap and input channel, the output gradient's rows at
the positions the channel's spikes reach, so its work follows the spike count; above a share of
ones (`MAX_WEIGHT_GRAD_DENSITY`) oneDNN's dense backward is as fast and is kept.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

GROUP = 8  # input channels per table group: 2**8 patterns
# Share of ones in the spikes up to which the weight gradient is summed from the spikes
# (`summed_weight_grad`) rather than taken from oneDNN's dense backward pass.
MAX_WEIGHT_GRAD_DENSITY = 0.08


def sparse_enough(spikes: torch.Tensor) -> bool:
    """Whether the weight gradient is cheaper summed from these spikes than dense."""
    return spikes.numel() > 0 and spikes.sum() <= MAX_WEIGHT_GRAD_DENSITY * spikes.numel()


def usable(spikes: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether `conv` applied to `spikes` can run as a lookup: fp32 on a CPU, outside bf16
    autocast (bf16 convolutions are faster where native), a 3x3 kernel, stride 1, padding 1,
    input channels a multiple of GROUP.

    It does not look at the values: the lookup is right only for inputs that are all 0 or 1
    (a LIF layer's spikes), which the caller vouches for. Any other value is read as a bit
    of a pattern and gives a wrong convolution without an error."""
    return (
        spikes.device.type == "cpu"
        and spikes.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.in_channels % GROUP == 0
    )


def lookup_table(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """[O, C, 3, 3] weights -> [9 * C/GROUP * 2**GROUP, O]: row (tap, group, pattern) holds
    the sum of that tap's weights over the group's channels set in `pattern` (bit i =
    channel group*GROUP + i). The centre tap's first group, read once per position, also
    carries the bias."""
    out_channels, in_channels = weight.shape[:2]
    groups = in_channels // GROUP
    patterns = torch.arange(2**GROUP, device=weight.device)
    bits = ((patterns[:, None] >> torch.arange(GROUP, device=weight.device)) & 1).to(weight.dtype)
    taps = weight.detach().permute(2, 3, 1, 0).reshape(9, groups, GROUP, out_channels)
    table = bits @ taps  # [9, groups, patterns, O]
    if bias is not None:
        table[4, 0] += bias.detach()
    return table.reshape(-1, out_channels)


def _lookup(spikes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """spikes [N, H, W, C] (0/1, contiguous) -> conv output [N, H, W, O]."""
    n, h, w, c = spikes.shape
    groups = c // GROUP
    place = 2 ** torch.arange(GROUP, device=spikes.device, dtype=spikes.dtype)
    patterns = (spikes.view(n, h, w, groups, GROUP) @ place).to(torch.int32)
    padded = F.pad(patterns, (0, 0, 1, 1, 1, 1))  # outside the image: pattern 0, no weights
    sn, sh, sw, sg = padded.stride()
    windows = padded.as_strided((n, h, w, 3, 3, groups), (sn, sh, sw, sh, sw, sg))
    first_rows = torch.arange(9 * groups, device=spikes.device, dtype=torch.int32) * 2**GROUP
    rows = torch.empty(windows.shape, dtype=torch.int32, device=spikes.device)
    torch.add(windows, first_rows.view(3, 3, groups), out=rows)
    summed = F.embedding_bag(rows.view(-1, 9 * groups), table, mode="sum")
    return summed.view(n, h, w, table.shape[1])  # n may be 0


def summed_weight_grad(spikes: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The weight gradient [O, C, 3, 3] of the convolution of spikes [N, H, W, C] (0/1) given
    its output's gradient [N, H, W, O]: for each tap and input channel, the sum of grad's rows
    at the positions that tap carried a spike to (one `embedding_bag` bag per (tap, channel)),
    work in proportion to the spikes. Each sum runs over positions in order, as oneDNN's does."""
    n, h, w, c = spikes.shape
    ones = torch.empty(c, n * h * w, dtype=torch.bool, device=spikes.device)
    torch.gt(spikes.view(-1, c).t(), 0, out=ones)  # channel-major: one channel's spikes together
    channel, place = ones.nonzero().to(torch.int32).unbind(1)
    k = torch.arange(-1, 2, dtype=torch.int32, device=spikes.device).view(3, 1)  # tap - 1
    row = (place % (h * w)).div_(w, rounding_mode="floor") - k  # where each tap carries a spike
    col = (place % w) - k
    inside = ((row >= 0) & (row < h)).unsqueeze(1) & ((col >= 0) & (col < w)).unsqueeze(0)
    # Row of grad for (tap, spike); outside the image it is any row, weighted 0 below.
    rows = (place - (k * w + k.view(1, 3)).unsqueeze(-1)).clamp_(0, n * h * w - 1).view(-1)
    counts = torch.bincount(channel, minlength=c).to(torch.int32)
    taps = torch.arange(9, dtype=torch.int32, device=spikes.device).view(9, 1)
    offsets = (taps * channel.numel() + counts.cumsum(0, dtype=torch.int32) - counts).view(-1)
    summed = F.embedding_bag(rows, grad.reshape(-1, grad.shape[-1]), offsets, mode="sum",
                             per_sample_weights=inside.view(-1).to(grad.dtype))
    return summed.view(3, 3, c, -1).permute(3, 2, 0, 1).contiguous()


class _SpikeConv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, weight, bias, table):
        ctx.save_for_backward(spikes, weight)
        ctx.has_bias = bias is not None
        return _lookup(spikes, table)

    @staticmethod
    def backward(ctx, grad):
        spikes, weight = ctx.saved_tensors
        grad = grad.contiguous()
        summed = ctx.needs_input_grad[1] and sparse_enough(spikes)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1] and not summed,
                ctx.has_bias and ctx.needs_input_grad[2] and not summed]
        grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad.permute(0, 3, 1, 2), spikes.permute(0, 3, 1, 2), weight,
            [weight.shape[0]] if ctx.has_bias else None, [1, 1], [1, 1], [1, 1], False,
            [0, 0], 1, mask,
        )
        if grad_input is not None:
            grad_input = grad_input.permute(0, 2, 3, 1)
        if summed:
            grad_weight = summed_weight_grad(spikes, grad)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_bias = grad.view(-1, grad.shape[-1]).sum(0)
        return grad_input, grad_weight, grad_bias, None


def spike_conv3x3(spikes: torch.Tensor, conv: torch.nn.Conv2d,
                  table: torch.Tensor) -> torch.Tensor:
    """`conv` (see `usable`) of channels-last spikes [N, H, W, C] -> [N, H, W, O], looked up
    in `table` (`lookup_table(conv.weight, conv.bias)`); gradients reach the spikes and
    `conv`'s weight and bias."""
    return _SpikeConv3x3.apply(spikes.contiguous(), conv.weight, conv.bias, table)
