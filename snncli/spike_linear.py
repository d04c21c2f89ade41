"""A linear layer of spikes (0/1 inputs) that adds the weight rows of the inputs that fired.

With 0/1 inputs, one sample's output is the bias plus the sum of the weight rows of its inputs
that spiked: `embedding_bag` over the indices of its ones (its CPU kernel is vectorised), not a
multiply-add for every input. The weight gradient is the same sum the other way round: input
i's row is the sum of the output gradients of the samples in which i fired. Both do work in
proportion to the spikes; the gradient of the spikes themselves stays a dense matrix product
(every input gets one, spiking or not). At the csnn's usual firing rates (a few percent) this
is several times faster than the dense product on a CPU, finding the ones included; from about
a fifth ones the dense product is as fast, so denser inputs take it (`MAX_DENSITY`; figures in
benchmarks/README.md). Sums run in another order than a matrix product's, so results agree
with it to float rounding, not bit for bit.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

MAX_DENSITY = 0.15  # share of ones above which the dense matrix product is used


def usable(spikes: torch.Tensor) -> bool:
    """Whether spikes [N, in] can be summed row by row: fp32 on a CPU, outside bf16 autocast
    (where native, bf16 matrix products are faster).

    It does not look at the values: summing rows is right only for inputs that are all 0 or
    1 (a LIF layer's spikes), which the caller vouches for. Any other value gives a wrong
    product without an error."""
    return (
        spikes.device.type == "cpu"
        and spikes.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def _bags(ones: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 matrix [rows, columns] as bool -> (column index of every one, row by row; where
    each row's indices start), the `input` and `offsets` of `embedding_bag`."""
    columns = ones.nonzero()[:, 1].contiguous()
    offsets = counts.cumsum(0) - counts
    return columns, offsets


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, table, bias):
        ones = spikes > 0
        columns, offsets = _bags(ones, spikes.sum(1).long())
        out = F.embedding_bag(columns, table, offsets, mode="sum")
        if bias is not None:
            out += bias
        ctx.save_for_backward(spikes, table)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        spikes, table = ctx.saved_tensors
        grad = grad.contiguous()
        grad_spikes = grad_table = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_spikes = grad @ table.t()
        if ctx.needs_input_grad[1]:
            # Row i of the table's gradient: the sum of grad's rows of the samples where input
            # i fired, so the bags run over the transposed spikes.
            samples, offsets = _bags((spikes > 0).t().contiguous(), spikes.sum(0).long())
            grad_table = F.embedding_bag(samples, grad, offsets, mode="sum")
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_spikes, grad_table, grad_bias


def spike_linear(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 table: torch.Tensor | None = None) -> torch.Tensor:
    """spikes [N, in] (0/1) -> `F.linear(spikes, weight [out, in], bias)` [N, out], with
    gradients for all. Given `table` (`weight.t().contiguous()`, made once where `usable`), the
    rows of the spikes that fired are summed when at most MAX_DENSITY of them are ones; else
    the dense product (under autocast where it is on: bf16 products keep the [out, in] weight,
    for which oneDNN's kernels are made)."""
    spikes = spikes.contiguous()
    if (table is not None and usable(spikes) and spikes.numel()
            and spikes.sum() <= MAX_DENSITY * spikes.numel()):
        return _SpikeLinear.apply(spikes, table, bias)
    return F.linear(spikes, weight, bias)
