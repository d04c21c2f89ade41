"""The LIF recurrences of `snncli.neurons` as Triton kernels: one launch per layer and pass.

Why: run as PyTorch ops, a layer's T time steps cost a few small elementwise kernels each
(compare, add, subtract, copy into the record), so a forward pass launches ~4*T kernels per
layer and re-reads the membrane from global memory every step; the backward pass is the same.
For the layer sizes here (10^4..10^6 neurons) those kernels are launch- and latency-bound.
Here one program owns a BLOCK of neurons (columns of the [T, N] tensors), keeps their state
in registers and loops over the T steps inside the kernel: the membrane is read once, every
input and output element crosses global memory exactly once, and a layer is one launch.

The four functions have the signatures and results of the PyTorch versions in
`snncli.neurons` (same floating-point operation order; see each kernel), so a model gives the
same spikes with or without Triton. The module imports without Triton (then `available()` is
False); kernels are compiled by Triton on first use, not at import.
"""

import contextlib
import os

import torch

try:  # Triton is optional: without it (or without a GPU) `snncli.neurons` uses PyTorch.
    import triton
    import triton.language as tl
except Exception:  # ImportError, or a broken install raising something else at import
    triton = None
    tl = None

_AVAILABLE = None


def _interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (its own reading of TRITON_INTERPRET)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on")


# Read once, here: `triton.jit` below decides at definition time whether it builds interpreted
# or compiled kernels, so setting the variable later would not change what the kernels are.
_INTERPRET = _interpreting()


def available() -> bool:
    """True when the kernels can run: Triton imports, and there is a CUDA device (or Triton's
    interpreter is on, for tests). Never raises; the answer is computed once."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            _AVAILABLE = bool(triton is not None and (_INTERPRET or torch.cuda.is_available()))
        except Exception:
            _AVAILABLE = False
    return _AVAILABLE


def disable(reason: str) -> None:
    """Stop using the kernels in this process (they failed on this GPU or toolchain)."""
    global _AVAILABLE
    if _AVAILABLE is not False:
        import warnings

        warnings.warn(f"Triton LIF kernels disabled, using PyTorch: {reason}", stacklevel=3)
    _AVAILABLE = False


# --- kernels --------------------------------------------------------------------------------
# Layout: current / mems / gradients are [T, N] row-major (row t = step t), state [N]. Program
# p handles neurons p*BLOCK .. p*BLOCK+BLOCK-1 (the tail is masked) and walks the rows by
# moving its pointers N elements at a time (64-bit pointer arithmetic, so T*N may exceed 2^31).
# Scalar float arguments arrive as fp32, like PyTorch's Python-scalar operands on fp32 tensors.
#
# `x + alpha*y` in PyTorch (torch.add(..., alpha=), add_(..., alpha=)) compiles on CUDA to one
# fused multiply-add (nvcc contracts `a + alpha*b`), so the kernels use tl.fma for it, which
# should make the forward record bit-identical to PyTorch's on CUDA (on CPU, and in Triton's
# interpreter, it can differ in the last bit). Divisions use tl.div_rn (IEEE rounding, as
# PyTorch); Triton's plain `/` on fp32 is an approximate division. The backward may differ
# from PyTorch by rounding (Triton contracts a*b+c into FMAs where PyTorch rounds twice).

if triton is not None:

    @triton.jit
    def _subtract_forward_kernel(
        cur_ptr, mem_ptr, mems_ptr, last_ptr, T, N, beta, threshold, BLOCK: tl.constexpr
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        mem = tl.load(mem_ptr + offs, mask=mask, other=0.0)
        cur_p = cur_ptr + offs
        out_p = mems_ptr + offs
        for _ in range(T):
            cur = tl.load(cur_p, mask=mask, other=0.0)
            reset = (mem > threshold).to(tl.float32)  # the previous step's spike
            # torch.add(current[t], mem, alpha=beta).sub_(reset, alpha=threshold)
            mem = tl.fma(mem, beta, cur) - threshold * reset
            tl.store(out_p, mem, mask=mask)
            cur_p += N
            out_p += N
        tl.store(last_ptr + offs, mem, mask=mask)

    @triton.jit
    def _subtract_backward_kernel(
        gs_ptr, gl_ptr, mems_ptr, gc_ptr, gstate_ptr, T, N, beta, threshold, slope,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        last_row = tl.cast(T - 1, tl.int64) * N
        gs_p = gs_ptr + last_row + offs
        m_p = mems_ptr + last_row + offs
        gc_p = gc_ptr + last_row + offs
        carry = tl.load(gl_ptr + offs, mask=mask, other=0.0)  # dL/dU[t] from later steps
        for _ in range(T):  # t = T-1 .. 0: gU[t] = g[t] + carry; carry = beta*gU[t]
            # surrogate g = gs / (slope*|U - thr| + 1)^2
            den = tl.abs(tl.load(m_p, mask=mask, other=0.0) - threshold) * slope + 1.0
            acc = tl.div_rn(tl.load(gs_p, mask=mask, other=0.0), den * den) + carry
            tl.store(gc_p, acc, mask=mask)
            carry = acc * beta
            gs_p -= N
            m_p -= N
            gc_p -= N
        tl.store(gstate_ptr + offs, carry, mask=mask)

    @triton.jit
    def _hard_reset_forward_kernel(
        cur_ptr, v_ptr, mems_ptr, last_ptr, T, N, tau, threshold, BLOCK: tl.constexpr
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        v_reset = tl.load(v_ptr + offs, mask=mask, other=0.0)
        cur_p = cur_ptr + offs
        out_p = mems_ptr + offs
        for _ in range(T):
            cur = tl.load(cur_p, mask=mask, other=0.0)
            v = tl.fma(v_reset, tau, cur)  # torch.add(current[t], v_reset, alpha=tau)
            tl.store(out_p, v, mask=mask)
            v_reset = v * (v <= threshold).to(tl.float32)
            cur_p += N
            out_p += N
        tl.store(last_ptr + offs, v_reset, mask=mask)

    @triton.jit
    def _hard_reset_backward_kernel(
        gs_ptr, gl_ptr, mems_ptr, gc_ptr, gstate_ptr, T, N, tau, threshold, gamma, inv_gamma2,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        last_row = tl.cast(T - 1, tl.int64) * N
        gs_p = gs_ptr + last_row + offs
        m_p = mems_ptr + last_row + offs
        gc_p = gc_ptr + last_row + offs
        carry = tl.load(gl_ptr + offs, mask=mask, other=0.0)  # dL/dVr[t] from later steps
        for _ in range(T):  # t = T-1 .. 0: gV[t] = g[t] + keep[t]*carry; carry = tau*gV[t]
            # g = gs * max(0, gamma - |V - thr|)/gamma^2; the state gradient passes only where
            # the neuron did not spike (the reset is detached)
            x = tl.load(m_p, mask=mask, other=0.0) - threshold
            tri = tl.maximum(gamma - tl.abs(x), 0.0) * inv_gamma2
            g = tl.load(gs_p, mask=mask, other=0.0) * tri
            acc = g + (x <= 0.0).to(tl.float32) * carry
            tl.store(gc_p, acc, mask=mask)
            carry = acc * tau
            gs_p -= N
            m_p -= N
            gc_p -= N
        tl.store(gstate_ptr + offs, carry, mask=mask)


# --- launch ---------------------------------------------------------------------------------


def _config(n: int) -> tuple[int, int]:
    """(BLOCK, num_warps). The kernels are memory-bound streams with a few registers of state
    per neuron, so what matters is enough programs in flight to cover memory latency on the
    H100's 132 SMs: 1024 neurons per program (4 warps, 8 floats a thread: two 128-bit accesses)
    for big layers; for smaller ones (under ~512 programs of 1024) 256 neurons per program
    (2 warps, one 128-bit access a thread) so the grid still spreads over every SM."""
    if n >= 512 * 1024:
        return 1024, 4
    return 256, 2


def _launch(kernel, n: int, device: torch.device, *args) -> None:
    block, num_warps = _config(n)
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:  # launch on the tensors' GPU, not just the current one
        kernel[(triton.cdiv(n, block),)](*args, BLOCK=block, num_warps=num_warps)


def _f32(x: torch.Tensor) -> torch.Tensor:
    """fp32 and contiguous (no copy when it already is, as `snncli.neurons` passes it)."""
    return x.to(torch.float32).contiguous()


def _shape(record: torch.Tensor, vector: torch.Tensor) -> tuple[int, int]:
    if record.dim() != 2:
        raise ValueError(f"expected a [T, N] tensor, got shape {tuple(record.shape)}")
    t, n = record.shape
    if vector.numel() != n:
        raise ValueError(f"expected a state of {n} elements, got shape {tuple(vector.shape)}")
    if n >= 2**31:
        raise ValueError(f"too many neurons for one launch ({n}); split the batch")
    return t, n


def _forward(kernel, current, state, decay: float, threshold: float):
    current, state = _f32(current), _f32(state).view(-1)
    t, n = _shape(current, state)
    mems = torch.empty_like(current)
    if t == 0:
        return mems, state
    last = current.new_empty(n)
    if n:
        _launch(kernel, n, current.device, current, state, mems, last, t, n,
                float(decay), float(threshold))
    return mems, last


def _backward(kernel, grad_spikes, grad_last, mems, *scalars):
    grad_spikes, grad_last, mems = _f32(grad_spikes), _f32(grad_last).view(-1), _f32(mems)
    t, n = _shape(mems, grad_last)
    if tuple(grad_spikes.shape) != (t, n):
        raise ValueError(f"grad_spikes has shape {tuple(grad_spikes.shape)}, not {(t, n)}")
    grad_current = torch.empty_like(mems)
    if t == 0:  # no steps: the state passes straight through
        return grad_current, grad_last.clone()
    grad_state = mems.new_empty(n)
    if n:
        _launch(kernel, n, mems.device, grad_spikes, grad_last, mems, grad_current, grad_state,
                t, n, *scalars)
    return grad_current, grad_state


def subtract_forward(current, mem, beta: float, threshold: float):
    """U[t] = beta*U[t-1] + I[t] - thr*(U[t-1] > thr) -> (membrane record U [T, N], U[T-1])."""
    return _forward(_subtract_forward_kernel, current, mem, beta, threshold)


def subtract_backward(grad_spikes, grad_last, mems, beta, threshold, slope):
    """-> (dL/dI [T, N], dL/dU[-1] [N]) with the fast-sigmoid surrogate 1/(1+slope|U-thr|)^2
    and the detached reset (dU[t+1]/dU[t] = beta)."""
    return _backward(_subtract_backward_kernel, grad_spikes, grad_last, mems,
                     float(beta), float(threshold), float(slope))


def hard_reset_forward(current, v_reset, tau: float, threshold: float):
    """V[t] = tau*Vr[t-1] + I[t]; Vr[t] = V[t]*(V[t] <= thr) -> (V record [T, N], Vr[T-1])."""
    return _forward(_hard_reset_forward_kernel, current, v_reset, tau, threshold)


def hard_reset_backward(grad_spikes, grad_last, mems, tau, threshold, gamma):
    """-> (dL/dI [T, N], dL/dVr[-1] [N]) with the triangle surrogate max(0, gamma-|V-thr|)/gamma^2
    and the detached reset mask (dV[t+1]/dV[t] = tau*(no spike at t))."""
    gamma = float(gamma)
    # PyTorch on CUDA divides by a Python scalar as a multiply by its fp32 reciprocal
    inv_gamma2 = (torch.tensor(1.0) / torch.tensor(gamma * gamma, dtype=torch.float32)).item()
    return _backward(_hard_reset_backward_kernel, grad_spikes, grad_last, mems,
                     float(tau), float(threshold), gamma, inv_gamma2)
