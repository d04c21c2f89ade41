"""Leaky integrate-and-fire layers that run a chunk of time steps per call.

Inputs are [T, B, ...] tensors; the membrane state is passed in and out so a model can run its
time steps in chunks (all layers for steps 0..k, then k..2k, ...) and still get exactly the
step-by-step result.

Each layer is one autograd node for all its steps (not T small ones): the forward pass runs the
recurrence without building a graph and keeps only the membrane record (fp32, also under bf16
autocast); the backward pass computes every step's surrogate derivative at once and then runs
the (linear) recurrence of the membrane gradient backwards in time. On CUDA both loops run
inside one Triton kernel each (`snncli.triton_lif`); elsewhere they are a short PyTorch loop.
"""

from __future__ import annotations

import sys

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


# --- the recurrences in plain PyTorch (CPU, MPS, and CUDA without Triton) -------------------
# Shapes: current/mems/grads [T, N]; state and grad_last [N]. `snncli.triton_lif` has the same
# four functions as CUDA kernels.


def subtract_forward(current, mem, beta: float, threshold: float, spikes=None):
    """U[t] = beta*U[t-1] + I[t] - thr*(U[t-1] > thr) -> (membrane record U, U[T-1]).

    `current` may be bf16 (autocast); the membrane is fp32. `spikes`, if given, is filled
    with S[t] = U[t] > thr in its own dtype (saves a pass over the record).
    """
    mems = torch.empty(current.shape, dtype=torch.float32, device=current.device)
    spikes = torch.empty_like(mems) if spikes is None else spikes
    reset = (mem > threshold).to(mem.dtype)
    for t in range(current.shape[0]):
        mem = torch.add(current[t], mem, alpha=beta, out=mems[t]).sub_(reset, alpha=threshold)
        reset = torch.gt(mem, threshold, out=spikes[t])
    return mems, mem


def subtract_backward(grad_spikes, grad_last, mems, beta, threshold, slope):
    """-> (dL/dI [T, N], dL/dU[-1]). S = H(U - thr) with the fast-sigmoid surrogate; the reset
    is detached (as in snnTorch), so dU[t+1]/dU[t] = beta."""
    grad = grad_spikes / (mems - threshold).abs_().mul_(slope).add_(1.0).square_()
    grad[-1].add_(grad_last)
    for t in range(grad.shape[0] - 2, -1, -1):
        grad[t].add_(grad[t + 1], alpha=beta)
    return grad, grad[0] * beta


def hard_reset_forward(current, v_reset, tau: float, threshold: float, spikes=None):
    """V[t] = tau*Vr[t-1] + I[t]; Vr[t] = V[t]*(V[t] <= thr) -> (V record, Vr[T-1]).

    As `subtract_forward`: fp32 membrane, `spikes` filled with V[t] > thr when given.
    """
    mems = torch.empty(current.shape, dtype=torch.float32, device=current.device)
    spikes = torch.empty_like(mems) if spikes is None else spikes
    for t in range(current.shape[0]):
        v = torch.add(current[t], v_reset, alpha=tau, out=mems[t])
        fired = torch.gt(v, threshold, out=spikes[t])
        v_reset = v.addcmul(v, fired, value=-1.0)
    return mems, v_reset


def hard_reset_backward(grad_spikes, grad_last, mems, tau, threshold, gamma):
    """-> (dL/dI, dL/dVr[-1]) with the triangle surrogate; the reset mask is detached, so
    dV[t+1]/dV[t] = tau * (no spike at t)."""
    x = mems - threshold
    grad = grad_spikes * (gamma - x.abs()).clamp_min_(0).div_(gamma * gamma)
    keep = (x <= 0).to(mems.dtype)
    grad[-1].addcmul_(keep[-1], grad_last)
    decay = keep.mul_(tau)
    for t in range(grad.shape[0] - 2, -1, -1):
        grad[t].addcmul_(decay[t], grad[t + 1])
    return grad, grad[0] * tau


def _kernels(tensor: torch.Tensor):
    """The module holding the four recurrences for this tensor's device."""
    if tensor.is_cuda:
        from . import triton_lif

        if triton_lif.available():
            return triton_lif
    return sys.modules[__name__]


def _on_triton(name: str, tensor: torch.Tensor, *args):
    """Recurrence `name` as a Triton kernel when `tensor` is on a GPU that runs them, else None.
    If Triton fails to compile or launch (an unsupported GPU or toolchain), warn once and leave
    the work to the PyTorch loop from then on."""
    kernels = _kernels(tensor)
    if kernels is sys.modules[__name__]:
        return None
    try:
        return getattr(kernels, name)(*args)
    except Exception as error:  # noqa: BLE001 - any Triton failure has the same remedy
        from . import triton_lif

        triton_lif.disable(f"{type(error).__name__}: {error}")
        return None


def _forward(reset: str, current, state, decay: float, threshold: float):
    """-> (spikes in the current's dtype, membrane record, last state)."""
    name = "subtract_forward" if reset == "subtract" else "hard_reset_forward"
    done = _on_triton(name, current, current.float(), state, decay, threshold)
    if done is not None:
        mems, last = done
        return (mems > threshold).to(current.dtype), mems, last
    spikes = torch.empty(current.shape, dtype=current.dtype, device=current.device)
    mems, last = globals()[name](current, state, decay, threshold, spikes)
    return spikes, mems, last


def _backward(reset: str, grad_spikes, grad_last, mems, decay, threshold, width):
    """-> (dL/dI, dL/dstate)."""
    name = "subtract_backward" if reset == "subtract" else "hard_reset_backward"
    args = (grad_spikes.float().contiguous(), grad_last.contiguous(), mems, decay, threshold,
            width)
    done = _on_triton(name, mems, *args)
    return done if done is not None else globals()[name](*args)


class LIFSequence(torch.autograd.Function):
    """All steps of one LIF layer as one autograd node: (current [T, N], state [N]) ->
    (spikes [T, N] in the current's dtype, last state [N], membrane record [T, N] in fp32, not
    differentiable). Under bf16 autocast the current and spikes are bf16 (spikes are exact),
    so no casts are needed around the neighbouring layers; the membrane stays fp32."""

    @staticmethod
    def forward(ctx, current, state, reset: str, decay: float, threshold: float, width: float):
        spikes, mems, last = _forward(reset, current, state, decay, threshold)
        ctx.save_for_backward(mems)
        ctx.params = (reset, decay, threshold, width)
        ctx.mark_non_differentiable(mems)
        return spikes, last, mems

    @staticmethod
    def backward(ctx, grad_spikes, grad_last, _grad_mems):
        (mems,) = ctx.saved_tensors
        grad_current, grad_state = _backward(*ctx.params[:1], grad_spikes, grad_last, mems,
                                             *ctx.params[1:])
        return grad_current, grad_state, None, None, None, None


def _run(current, state, reset, decay, threshold, width, record_membrane):
    """[T, B, ...] -> (spikes [T, B, ...], state [B, ...], membrane [T, B, ...] or None)."""
    # A static input's current arrives expanded over time (stride 0): reshape keeps it a view,
    # so it is never copied T times.
    flat = current.reshape(current.shape[0], -1)
    if state is None:
        state = torch.zeros(flat.shape[1], dtype=torch.float32, device=flat.device)
    spikes, last, mems = LIFSequence.apply(
        flat, state.reshape(-1), reset, decay, threshold, width
    )
    shape = current.shape
    return (
        spikes.view(shape),
        last.view(shape[1:]),
        mems.view(shape) if record_membrane else None,
    )


class LeakySubtract(nn.Module):
    """snnTorch `Leaky` semantics: U[t] = beta*U[t-1] + I[t] - S[t-1]*thr, S[t] = U[t] > thr.

    The reset term uses the previous step's spike, detached from the graph (as snnTorch does);
    the surrogate gradient is the fast sigmoid 1/(1+slope|U-thr|)^2.
    """

    def __init__(self, beta: float = 0.5, threshold: float = 1.0, slope: float = 25.0):
        super().__init__()
        self.beta, self.threshold, self.slope = beta, threshold, slope

    def forward(self, current, state=None, record_membrane: bool = False):
        """current [T, B, ...] -> (spikes [T, B, ...], state, membrane [T, B, ...] or None)."""
        return _run(current, state, "subtract", self.beta, self.threshold, self.slope,
                    record_membrane)


class LeakyHardReset(nn.Module):
    """The seed MLP's LIF: V[t] = tau*V[t-1] + I[t]; spike when V > thr, then V = 0.

    `mem` returned is the membrane before reset (what the spike was decided on); the surrogate
    gradient is the triangle max(0, gamma-|V-thr|)/gamma^2.
    """

    def __init__(self, tau: float = 0.5, threshold: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.tau, self.threshold, self.gamma = tau, threshold, gamma

    def forward(self, current, state=None, record_membrane: bool = False):
        """current [T, B, ...] -> (spikes [T, B, ...], state, membrane [T, B, ...] or None)."""
        return _run(current, state, "hard", self.tau, self.threshold, self.gamma,
                    record_membrane)
