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
# Layout: mems / spikes / gradients are [T, N] row-major (row t = step t), state [N]. Program
# p handles neurons p*BLOCK .. p*BLOCK+BLOCK-1 (the tail is masked) and walks the rows by
# moving its pointers N elements at a time (64-bit pointer arithmetic, so T*N may exceed 2^31).
# The current's rows are `cur_step` apart: N, or 0 for a static current (one [N] row read at
# every step). Currents, spikes and gradients may be bf16: they are converted in registers
# (the membrane and all arithmetic stay fp32), so no conversion passes run around a kernel.
# A STATIC backward sums dL/dI over the steps in registers and writes one [N] row.
# Scalar float arguments arrive as fp32, like PyTorch's Python-scalar operands on fp32 tensors.
#
# `x + alpha*y` in PyTorch (torch.add(..., alpha=), add_(..., alpha=)) compiles on CUDA to one
# fused multiply-add (nvcc contracts `a + alpha*b`), so the kernels use tl.fma for it, which
# should make the forward record bit-identical to PyTorch's on CUDA (on CPU, and in Triton's
# interpreter, it can differ in the last bit). Divisions use tl.div_rn (IEEE rounding, as
# PyTorch); Triton's plain `/` on fp32 is an approximate division. The backward may differ
# from PyTorch by rounding (Triton contracts a*b+c into FMAs where PyTorch rounds twice, and
# sums a static gradient in step order).

if triton is not None:

    @triton.jit
    def _spike(fired, ptr):
        """A boolean block as 0/1 in `ptr`'s element type (through fp32: Triton's interpreter
        cannot cast booleans to bf16 directly; compiled, the two casts are one select)."""
        return fired.to(tl.float32).to(ptr.dtype.element_ty)

    @triton.jit
    def _subtract_forward_kernel(
        cur_ptr, mem_ptr, mems_ptr, spk_ptr, last_ptr, T, N, cur_step, beta, threshold,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        mem = tl.load(mem_ptr + offs, mask=mask, other=0.0)
        cur_p = cur_ptr + offs
        out_p = mems_ptr + offs
        spk_p = spk_ptr + offs
        for _ in range(T):
            cur = tl.load(cur_p, mask=mask, other=0.0).to(tl.float32)
            reset = (mem > threshold).to(tl.float32)  # the previous step's spike
            # torch.add(current[t], mem, alpha=beta).sub_(reset, alpha=threshold)
            mem = tl.fma(mem, beta, cur) - threshold * reset
            tl.store(out_p, mem, mask=mask)
            tl.store(spk_p, _spike(mem > threshold, spk_ptr), mask=mask)
            cur_p += cur_step
            out_p += N
            spk_p += N
        tl.store(last_ptr + offs, mem, mask=mask)

    @triton.jit
    def _subtract_backward_kernel(
        gs_ptr, gl_ptr, mems_ptr, gc_ptr, gstate_ptr, init_ptr, gdecay_ptr, T, N, beta,
        threshold, slope, BLOCK: tl.constexpr, STATIC: tl.constexpr, LEARN: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        last_row = tl.cast(T - 1, tl.int64) * N
        gs_p = gs_ptr + last_row + offs
        m_p = mems_ptr + last_row + offs
        if STATIC:
            gc_p = gc_ptr + offs
        else:
            gc_p = gc_ptr + last_row + offs
        carry = tl.load(gl_ptr + offs, mask=mask, other=0.0)  # dL/dU[t] from later steps
        total = tl.zeros([BLOCK], dtype=tl.float32)
        later = tl.zeros([BLOCK], dtype=tl.float32)  # gU[t+1] (LEARN)
        gdecay = tl.zeros([BLOCK], dtype=tl.float32)  # sum over t of gU[t+1] * U[t] (LEARN)
        for _ in range(T):  # t = T-1 .. 0: gU[t] = g[t] + carry; carry = beta*gU[t]
            # surrogate g = gs / (slope*|U - thr| + 1)^2
            mem = tl.load(m_p, mask=mask, other=0.0)
            den = tl.abs(mem - threshold) * slope + 1.0
            gs = tl.load(gs_p, mask=mask, other=0.0).to(tl.float32)
            acc = tl.div_rn(gs, den * den) + carry
            if LEARN:
                gdecay += later * mem
                later = acc
            if STATIC:
                total += acc
            else:
                tl.store(gc_p, acc.to(gc_ptr.dtype.element_ty), mask=mask)
                gc_p -= N
            carry = acc * beta
            gs_p -= N
            m_p -= N
        if STATIC:
            tl.store(gc_p, total.to(gc_ptr.dtype.element_ty), mask=mask)
        tl.store(gstate_ptr + offs, carry, mask=mask)
        if LEARN:  # step 0 decayed the initial state
            gdecay += later * tl.load(init_ptr + offs, mask=mask, other=0.0)
            tl.store(gdecay_ptr + offs, gdecay, mask=mask)

    @triton.jit
    def _hard_reset_forward_kernel(
        cur_ptr, v_ptr, mems_ptr, spk_ptr, last_ptr, T, N, cur_step, tau, threshold,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        v_reset = tl.load(v_ptr + offs, mask=mask, other=0.0)
        cur_p = cur_ptr + offs
        out_p = mems_ptr + offs
        spk_p = spk_ptr + offs
        for _ in range(T):
            cur = tl.load(cur_p, mask=mask, other=0.0).to(tl.float32)
            v = tl.fma(v_reset, tau, cur)  # torch.add(current[t], v_reset, alpha=tau)
            tl.store(out_p, v, mask=mask)
            tl.store(spk_p, _spike(v > threshold, spk_ptr), mask=mask)
            v_reset = v * (v <= threshold).to(tl.float32)
            cur_p += cur_step
            out_p += N
            spk_p += N
        tl.store(last_ptr + offs, v_reset, mask=mask)

    @triton.jit
    def _hard_reset_backward_kernel(
        gs_ptr, gl_ptr, mems_ptr, gc_ptr, gstate_ptr, init_ptr, gdecay_ptr, T, N, tau,
        threshold, gamma, inv_gamma2, BLOCK: tl.constexpr, STATIC: tl.constexpr,
        LEARN: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        last_row = tl.cast(T - 1, tl.int64) * N
        gs_p = gs_ptr + last_row + offs
        m_p = mems_ptr + last_row + offs
        if STATIC:
            gc_p = gc_ptr + offs
        else:
            gc_p = gc_ptr + last_row + offs
        carry = tl.load(gl_ptr + offs, mask=mask, other=0.0)  # dL/dVr[t] from later steps
        total = tl.zeros([BLOCK], dtype=tl.float32)
        later = tl.zeros([BLOCK], dtype=tl.float32)  # gV[t+1] (LEARN)
        gdecay = tl.zeros([BLOCK], dtype=tl.float32)  # sum over t of gV[t+1] * Vr[t] (LEARN)
        for _ in range(T):  # t = T-1 .. 0: gV[t] = g[t] + keep[t]*carry; carry = tau*gV[t]
            # g = gs * max(0, gamma - |V - thr|)/gamma^2; the state gradient passes only where
            # the neuron did not spike (the reset is detached)
            v = tl.load(m_p, mask=mask, other=0.0)
            x = v - threshold
            tri = tl.maximum(gamma - tl.abs(x), 0.0) * inv_gamma2
            g = tl.load(gs_p, mask=mask, other=0.0).to(tl.float32) * tri
            keep = (x <= 0.0).to(tl.float32)
            acc = g + keep * carry
            if LEARN:
                gdecay += later * (v * keep)
                later = acc
            if STATIC:
                total += acc
            else:
                tl.store(gc_p, acc.to(gc_ptr.dtype.element_ty), mask=mask)
                gc_p -= N
            carry = acc * tau
            gs_p -= N
            m_p -= N
        if STATIC:
            tl.store(gc_p, total.to(gc_ptr.dtype.element_ty), mask=mask)
        tl.store(gstate_ptr + offs, carry, mask=mask)
        if LEARN:  # step 0 decayed the initial (already reset) state
            gdecay += later * tl.load(init_ptr + offs, mask=mask, other=0.0)
            tl.store(gdecay_ptr + offs, gdecay, mask=mask)


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


def _launch(kernel, n: int, device: torch.device, *args, **constants) -> None:
    block, num_warps = _config(n)
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:  # launch on the tensors' GPU, not just the current one
        kernel[(triton.cdiv(n, block),)](*args, BLOCK=block, num_warps=num_warps, **constants)


def _check(n: int, vector: torch.Tensor, t: int, record: torch.Tensor | None = None) -> None:
    if vector.numel() != n:
        raise ValueError(f"expected a state of {n} elements, got shape {tuple(vector.shape)}")
    if record is not None and tuple(record.shape) != (t, n):
        raise ValueError(f"expected a [T, N] = {(t, n)} tensor, got {tuple(record.shape)}")
    if n >= 2**31:
        raise ValueError(f"too many neurons for one launch ({n}); split the batch")


def _forward(kernel, current, state, decay: float, threshold: float, steps: int | None):
    """-> (spikes [T, N] in the current's dtype, membrane record [T, N] fp32, last state)."""
    current = current.contiguous()
    state = state.to(torch.float32).contiguous().view(-1)
    if steps is None:
        if current.dim() != 2:
            raise ValueError(f"expected a [T, N] current, got shape {tuple(current.shape)}")
        t, n = current.shape
    else:
        t, n = steps, current.numel()
    _check(n, state, t)
    mems = torch.empty(t, n, dtype=torch.float32, device=current.device)
    spikes = torch.empty(t, n, dtype=current.dtype, device=current.device)
    if t == 0:
        return spikes, mems, state
    last = mems.new_empty(n)
    if n:
        _launch(kernel, n, current.device, current, state, mems, spikes, last, t, n,
                0 if steps is not None else n, float(decay), float(threshold))
    return spikes, mems, last


def _backward(kernel, grad_spikes, grad_last, mems, scalars, static: bool, dtype, initial):
    """-> (dL/dI [T, N], or [N] summed over steps if `static`, in `dtype`; dL/dstate [N];
    dL/d(decay) as a 0-dim tensor, or None without `initial`, the state before step 0)."""
    mems = mems.to(torch.float32).contiguous()
    grad_spikes = grad_spikes.contiguous()
    grad_last = grad_last.to(torch.float32).contiguous().view(-1)
    if mems.dim() != 2:
        raise ValueError(f"expected a [T, N] membrane record, got shape {tuple(mems.shape)}")
    t, n = mems.shape
    _check(n, grad_last, t, grad_spikes)
    dtype = dtype or torch.float32
    grad_current = torch.empty((n,) if static else (t, n), dtype=dtype, device=mems.device)
    learn = initial is not None
    if learn:
        initial = initial.to(torch.float32).contiguous().view(-1)
        _check(n, initial, t)
    if t == 0:  # no steps: the state passes straight through
        return grad_current.zero_(), grad_last.clone(), mems.new_zeros(()) if learn else None
    grad_state = mems.new_empty(n)
    # per-neuron partial sums of dL/d(decay); without LEARN the kernel never touches them
    grad_decay = mems.new_zeros(n) if learn else grad_state
    if n:
        _launch(kernel, n, mems.device, grad_spikes, grad_last, mems, grad_current, grad_state,
                initial if learn else grad_last, grad_decay, t, n, *scalars, STATIC=static,
                LEARN=learn)
    return grad_current, grad_state, grad_decay.sum() if learn else None


def subtract_forward(current, mem, beta: float, threshold: float, steps: int | None = None):
    """U[t] = beta*U[t-1] + I[t] - thr*(U[t-1] > thr) -> (spikes, membrane record U [T, N],
    U[T-1]); a static current is one [N] row, read at each of `steps` steps."""
    return _forward(_subtract_forward_kernel, current, mem, beta, threshold, steps)


def subtract_backward(grad_spikes, grad_last, mems, beta, threshold, slope, static=False,
                      dtype=None, initial=None):
    """-> (dL/dI, dL/dU[-1] [N], dL/dbeta or None) with the fast-sigmoid surrogate
    1/(1+slope|U-thr|)^2 and the detached reset (dU[t+1]/dU[t] = beta)."""
    return _backward(_subtract_backward_kernel, grad_spikes, grad_last, mems,
                     (float(beta), float(threshold), float(slope)), static, dtype, initial)


def hard_reset_forward(current, v_reset, tau: float, threshold: float, steps: int | None = None):
    """V[t] = tau*Vr[t-1] + I[t]; Vr[t] = V[t]*(V[t] <= thr) -> (spikes, V record [T, N],
    Vr[T-1])."""
    return _forward(_hard_reset_forward_kernel, current, v_reset, tau, threshold, steps)


def hard_reset_backward(grad_spikes, grad_last, mems, tau, threshold, gamma, static=False,
                        dtype=None, initial=None):
    """-> (dL/dI, dL/dVr[-1] [N], dL/dtau or None) with the triangle surrogate
    max(0, gamma-|V-thr|)/gamma^2 and the detached reset mask (dV[t+1]/dV[t] = tau*(no spike
    at t))."""
    gamma = float(gamma)
    # PyTorch on CUDA divides by a Python scalar as a multiply by its fp32 reciprocal
    inv_gamma2 = (torch.tensor(1.0) / torch.tensor(gamma * gamma, dtype=torch.float32)).item()
    return _backward(_hard_reset_backward_kernel, grad_spikes, grad_last, mems,
                     (float(tau), float(threshold), gamma, inv_gamma2), static, dtype, initial)
