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

import math
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
# Shapes: current [T, N], or [N] for a static current (the same every step; `steps` says how
# many); mems and grads [T, N]; state and grad_last [N]. `snncli.triton_lif` has the same four
# functions as CUDA kernels.


def _steps(current, steps):
    """(T, the current of step t) for a time-varying ([T, N]) or static ([N]) current."""
    if steps is None:
        return current.shape[0], lambda t: current[t]
    return steps, lambda t: current


def subtract_forward(current, mem, beta: float, threshold: float, steps: int | None = None):
    """U[t] = beta*U[t-1] + I[t] - thr*(U[t-1] > thr) -> (spikes S[t] = U[t] > thr in the
    current's dtype, membrane record U in fp32, U[T-1]). The current may be bf16 (autocast)."""
    t_steps, current_at = _steps(current, steps)
    n = current.shape[-1]
    mems = torch.empty(t_steps, n, dtype=torch.float32, device=current.device)
    spikes = torch.empty(t_steps, n, dtype=current.dtype, device=current.device)
    reset = torch.gt(mem, threshold, out=torch.empty_like(mem))  # float out: no bool pass
    for t in range(t_steps):
        mem = torch.add(current_at(t), mem, alpha=beta, out=mems[t]).sub_(reset, alpha=threshold)
        reset = torch.gt(mem, threshold, out=spikes[t])
    return spikes, mems, mem


def _current_grad(grad, static: bool, dtype):
    """dL/dI per step, or summed over the steps for a static current, in the current's dtype."""
    return (grad.sum(0) if static else grad).to(dtype or torch.float32)


def _decay_grad(grad, previous, initial):
    """dL/d(decay) = sum over steps and neurons of dL/dU[t] * (the state decayed into U[t]):
    `previous` [T-1, N] for steps 1.., `initial` [N] (the state before step 0) for step 0.
    None when the decay is fixed (`initial` None)."""
    if initial is None:
        return None
    return (grad[1:] * previous).sum() + (grad[0] * initial).sum()


def subtract_backward(grad_spikes, grad_last, mems, beta, threshold, slope, static=False,
                      dtype=None, initial=None):
    """-> (dL/dI [T, N] or [N] if static, dL/dU[-1], dL/dbeta or None). S = H(U - thr) with
    the fast-sigmoid surrogate; the reset is detached (as in snnTorch), so dU[t+1]/dU[t] =
    beta. dL/dbeta (a 0-dim tensor) is computed when `initial`, the state before step 0, is
    given (a learned decay)."""
    grad = grad_spikes / (mems - threshold).abs_().mul_(slope).add_(1.0).square_()
    grad[-1].add_(grad_last)
    for t in range(grad.shape[0] - 2, -1, -1):
        grad[t].add_(grad[t + 1], alpha=beta)
    grad_beta = _decay_grad(grad, mems[:-1], initial)
    return _current_grad(grad, static, dtype), grad[0] * beta, grad_beta


def hard_reset_forward(current, v_reset, tau: float, threshold: float, steps: int | None = None):
    """V[t] = tau*Vr[t-1] + I[t]; Vr[t] = V[t]*(V[t] <= thr) -> (spikes V[t] > thr in the
    current's dtype, V record in fp32, Vr[T-1])."""
    t_steps, current_at = _steps(current, steps)
    n = current.shape[-1]
    mems = torch.empty(t_steps, n, dtype=torch.float32, device=current.device)
    spikes = torch.empty(t_steps, n, dtype=current.dtype, device=current.device)
    for t in range(t_steps):
        v = torch.add(current_at(t), v_reset, alpha=tau, out=mems[t])
        fired = torch.gt(v, threshold, out=spikes[t])
        v_reset = v.addcmul(v, fired, value=-1.0)
    return spikes, mems, v_reset


def hard_reset_backward(grad_spikes, grad_last, mems, tau, threshold, gamma, static=False,
                        dtype=None, initial=None):
    """-> (dL/dI [T, N] or [N] if static, dL/dVr[-1], dL/dtau or None) with the triangle
    surrogate; the reset mask is detached, so dV[t+1]/dV[t] = tau * (no spike at t).
    dL/dtau is computed when `initial`, the state before step 0, is given."""
    x = mems - threshold
    grad = grad_spikes * (gamma - x.abs()).clamp_min_(0).div_(gamma * gamma)
    keep = (x <= 0).to(mems.dtype)
    grad[-1].addcmul_(keep[-1], grad_last)
    reset = mems[:-1] * keep[:-1] if initial is not None else None  # Vr[t-1], t = 1..
    decay = keep.mul_(tau)
    for t in range(grad.shape[0] - 2, -1, -1):
        grad[t].addcmul_(decay[t], grad[t + 1])
    grad_tau = _decay_grad(grad, reset, initial)
    return _current_grad(grad, static, dtype), grad[0] * tau, grad_tau


def _kernels(tensor: torch.Tensor):
    """The module holding the four recurrences for this tensor's device."""
    if tensor.is_cuda:
        from . import triton_lif

        if triton_lif.available():
            return triton_lif
    return sys.modules[__name__]


def _recurrence(name: str, tensor: torch.Tensor, *args):
    """Run recurrence `name` as a Triton kernel when `tensor` is on a GPU that runs them, else
    as the PyTorch loop above. If Triton fails to compile or launch (an unsupported GPU or
    toolchain), warn once and use the PyTorch loop from then on."""
    kernels = _kernels(tensor)
    if kernels is not sys.modules[__name__]:
        try:
            return getattr(kernels, name)(*args)
        except Exception as error:  # noqa: BLE001 - any Triton failure has the same remedy
            from . import triton_lif

            triton_lif.disable(f"{type(error).__name__}: {error}")
    return globals()[name](*args)


class LIFSequence(torch.autograd.Function):
    """All steps of one LIF layer as one autograd node: (current [T, N] or static [N], state
    [N]) -> (spikes [T, N] in the current's dtype, last state [N], membrane record [T, N] in
    fp32, not differentiable). Under bf16 autocast the current and spikes are bf16 (spikes
    are exact), so no casts are needed around the neighbouring layers; the membrane stays
    fp32. A static current (`steps` given) is read, and its gradient summed, without ever
    being expanded to [T, N]. `decay` is a float, or a 0-dim tensor when it is learned (its
    gradient is then computed too)."""

    @staticmethod
    def forward(ctx, current, state, reset: str, decay, threshold: float, width: float,
                steps: int | None):
        name = "subtract" if reset == "subtract" else "hard_reset"
        decay = float(decay)
        spikes, mems, last = _recurrence(name + "_forward", current, current, state, decay,
                                         threshold, steps)
        # The initial state enters only dL/d(decay): kept only when the decay is learned.
        ctx.save_for_backward(mems, state if ctx.needs_input_grad[3] else None)
        ctx.params = (name, decay, threshold, width, steps is not None, current.dtype)
        ctx.mark_non_differentiable(mems)
        # Unused outputs (the membrane record, the last chunk's state) get None as their
        # gradient instead of a zero-filled tensor: the record's would be [T, N].
        ctx.set_materialize_grads(False)
        return spikes, last, mems

    @staticmethod
    def backward(ctx, grad_spikes, grad_last, _grad_mems):
        mems, state = ctx.saved_tensors
        name, decay, threshold, width, static, dtype = ctx.params
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(mems)
        if grad_last is None:
            grad_last = torch.zeros_like(mems[0])
        initial = None if state is None else state.to(torch.float32)
        grad_current, grad_state, grad_decay = _recurrence(
            name + "_backward", mems, grad_spikes, grad_last.contiguous(), mems, decay,
            threshold, width, static, dtype, initial,
        )
        return grad_current, grad_state, None, grad_decay, None, None, None


def _run(current, state, reset, decay, threshold, width, record_membrane, steps=None):
    """[T, B, ...] (or, with `steps`, a static [B, ...] current held for that many steps) ->
    (spikes [T, B, ...], state [B, ...], membrane [T, B, ...] or None). A static current is
    passed to the layer as its one [N] row: never copied T times, its gradient summed over
    the steps inside the layer."""
    shape = current.shape if steps is None else (steps, *current.shape)
    flat = current.reshape(-1) if steps is not None else current.reshape(shape[0], -1)
    if state is None:
        state = torch.zeros(flat.shape[-1], dtype=torch.float32, device=flat.device)
    spikes, last, mems = LIFSequence.apply(
        flat, state.reshape(-1), reset, decay, threshold, width, steps,
    )
    return (
        spikes.view(shape),
        last.view(shape[1:]),
        mems.view(shape) if record_membrane else None,
    )


class _Leaky(nn.Module):
    """What both LIF layers share: a decay (beta, tau) that is a fixed float or, with
    `learn_decay`, learned per layer (as in PLIF, Fang et al. 2021) through a sigmoid that
    keeps it in (0, 1), starting from the given value."""

    reset = ""  # the `_run` reset mode

    def __init__(self, decay: float, threshold: float, width: float, learn_decay: bool):
        super().__init__()
        self.threshold, self.width = threshold, width
        self.fixed_decay = None if learn_decay else decay
        if learn_decay:
            if not 0.0 < decay < 1.0:
                raise ValueError(f"a learned decay starts inside (0, 1), not at {decay}")
            self.decay_logit = nn.Parameter(torch.tensor(math.log(decay / (1.0 - decay))))

    def decay(self):
        """The decay to run with: a float, or a 0-dim tensor in the graph when learned (the
        fused layer reads its value once per call; on a GPU that read waits for the queued
        work, a cost not yet measured there)."""
        return self.fixed_decay if self.fixed_decay is not None else self.decay_logit.sigmoid()

    def forward(self, current, state=None, record_membrane: bool = False,
                steps: int | None = None):
        """current [T, B, ...] -> (spikes [T, B, ...], state, membrane [T, B, ...] or None).
        With `steps`, `current` is [B, ...], the same at each of that many steps (a static
        input's), and is read without being expanded."""
        return _run(current, state, self.reset, self.decay(), self.threshold, self.width,
                    record_membrane, steps)


class LeakySubtract(_Leaky):
    """snnTorch `Leaky` semantics: U[t] = beta*U[t-1] + I[t] - S[t-1]*thr, S[t] = U[t] > thr.

    The reset term uses the previous step's spike, detached from the graph (as snnTorch does);
    the surrogate gradient is the fast sigmoid 1/(1+slope|U-thr|)^2.
    """

    reset = "subtract"

    def __init__(self, beta: float = 0.5, threshold: float = 1.0, slope: float = 25.0,
                 learn_decay: bool = False):
        super().__init__(beta, threshold, slope, learn_decay)


class LeakyHardReset(_Leaky):
    """The seed MLP's LIF: V[t] = tau*V[t-1] + I[t]; spike when V > thr, then V = 0.

    `mem` returned is the membrane before reset (what the spike was decided on); the surrogate
    gradient is the triangle max(0, gamma-|V-thr|)/gamma^2.
    """

    reset = "hard"

    def __init__(self, tau: float = 0.5, threshold: float = 1.0, gamma: float = 1.0,
                 learn_decay: bool = False):
        super().__init__(tau, threshold, gamma, learn_decay)
