"""Leaky integrate-and-fire layers that run a chunk of time steps per call.

Inputs are [T, B, ...] tensors; the membrane state is passed in and out so a model can run its
time steps in chunks (all layers for steps 0..k, then k..2k, ...) and still get exactly the
step-by-step result.
"""

from __future__ import annotations

import torch
from torch import nn


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid derivative 1/(1+k|x|)^2 backward (snnTorch's)."""

    @staticmethod
    def forward(ctx, x, slope: float):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (ctx.slope * x.abs() + 1.0) ** 2, None


class TriangleSpike(torch.autograd.Function):
    """Heaviside forward, triangle derivative max(0, gamma-|x|)/gamma^2 backward."""

    @staticmethod
    def forward(ctx, x, gamma: float):
        ctx.save_for_backward(x)
        ctx.gamma = gamma
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = ctx.gamma
        return grad * (g - x.abs()).clamp_min(0) / (g * g), None


class LeakySubtract(nn.Module):
    """snnTorch `Leaky` semantics: U[t] = beta*U[t-1] + I[t] - S[t-1]*thr, S[t] = U[t] > thr.

    The reset term uses the previous step's spike, detached from the graph (as snnTorch does).
    """

    def __init__(self, beta: float = 0.5, threshold: float = 1.0, slope: float = 25.0):
        super().__init__()
        self.beta, self.threshold, self.slope = beta, threshold, slope

    def forward(self, current, state=None, record_membrane: bool = False):
        """current [T, B, ...] -> (spikes [T, B, ...], state, membrane [T, B, ...] or None)."""
        mem = torch.zeros_like(current[0]) if state is None else state
        spikes, mems = [], []
        for x in current:
            reset = (mem > self.threshold).to(mem.dtype)
            mem = self.beta * mem + x - reset * self.threshold
            spikes.append(FastSigmoidSpike.apply(mem - self.threshold, self.slope))
            if record_membrane:
                mems.append(mem)
        return torch.stack(spikes), mem, torch.stack(mems) if record_membrane else None


class LeakyHardReset(nn.Module):
    """The seed MLP's LIF: V[t] = tau*V[t-1] + I[t]; spike when V > thr, then V = 0.

    `mem` returned is the membrane before reset (what the spike was decided on).
    """

    def __init__(self, tau: float = 0.5, threshold: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.tau, self.threshold, self.gamma = tau, threshold, gamma

    def forward(self, current, state=None, record_membrane: bool = False):
        """current [T, B, ...] -> (spikes [T, B, ...], state, membrane [T, B, ...] or None)."""
        v_reset = torch.zeros_like(current[0]) if state is None else state
        spikes, mems = [], []
        for x in current:
            v = self.tau * v_reset + x
            s = TriangleSpike.apply(v - self.threshold, self.gamma)
            v_reset = v * (1.0 - s.detach())
            spikes.append(s)
            if record_membrane:
                mems.append(v)
        return torch.stack(spikes), v_reset, torch.stack(mems) if record_membrane else None
