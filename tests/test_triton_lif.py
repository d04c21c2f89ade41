"""The Triton LIF kernels against the PyTorch recurrences in `snncli.neurons`.

Without a GPU the kernels run in Triton's CPU interpreter, which has to be switched on
(TRITON_INTERPRET=1) before triton is imported, so those checks run in a fresh process.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None

# Runs in a subprocess; prints one line per check and exits nonzero on a mismatch.
COMPARE = textwrap.dedent(
    """
    import torch
    from snncli import neurons, triton_lif

    assert triton_lif.available()
    torch.manual_seed(0)
    thr = 1.0

    def check(kind, T, N, decay, width, device, dtype=torch.float32, static=False):
        cur = (torch.randn(N) if static else torch.randn(T, N)) * 1.5
        cur = cur.to(device, dtype)
        steps = T if static else None
        state = (torch.randn(N) * 0.8).to(device)
        ref_f = getattr(neurons, kind + "_forward")
        tri_f = getattr(triton_lif, kind + "_forward")
        spk_r, mems_r, last_r = ref_f(cur, state.clone(), decay, thr, steps)
        spk_t, mems_t, last_t = tri_f(cur, state.clone(), decay, thr, steps)
        assert mems_t.shape == mems_r.shape == (T, N) and last_t.shape == last_r.shape
        assert spk_t.dtype == spk_r.dtype == dtype and mems_t.dtype == torch.float32
        assert torch.equal(spk_t, spk_r), kind + ": spikes differ"
        assert torch.equal(spk_r, (mems_r > thr).to(dtype)), kind + ": spikes are not U > thr"
        torch.testing.assert_close(mems_t, mems_r, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(last_t, last_r, rtol=1e-6, atol=1e-6)
        spikes = int(spk_r.sum())
        if N >= 100:  # fires and resets, so the check covers both branches of the reset
            assert 0 < spikes < mems_r.numel(), kind + ": no/only spikes, a weak check"

        gs = torch.randn(T, N).to(device, dtype)
        gl = torch.randn(N).to(device)
        ref_b = getattr(neurons, kind + "_backward")
        tri_b = getattr(triton_lif, kind + "_backward")
        gc_r, gst_r, none_r = ref_b(gs.clone(), gl.clone(), mems_r, decay, thr, width, static,
                                    dtype)
        gc_t, gst_t, none_t = tri_b(gs, gl, mems_r, decay, thr, width, static, dtype)
        assert none_r is None and none_t is None  # a fixed decay has no gradient
        # a learned decay: the same gradients, plus dL/d(decay) (summed in another order)
        learned_r = ref_b(gs.clone(), gl.clone(), mems_r, decay, thr, width, static, dtype,
                          state)
        learned_t = tri_b(gs, gl, mems_r, decay, thr, width, static, dtype, state)
        assert torch.equal(learned_r[0], gc_r) and torch.equal(learned_t[0], gc_t)
        assert learned_r[2].shape == learned_t[2].shape == ()
        assert learned_r[2].abs() > 0
        torch.testing.assert_close(learned_t[2], learned_r[2], rtol=1e-4, atol=1e-4)
        assert gc_t.shape == gc_r.shape == cur.shape and gst_t.shape == gst_r.shape
        assert gc_t.dtype == gc_r.dtype == dtype
        tol = {} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-2}
        torch.testing.assert_close(gc_t, gc_r, **(tol or {"rtol": 1e-5, "atol": 1e-5}))
        torch.testing.assert_close(gst_t, gst_r, rtol=1e-5, atol=1e-6)
        assert gc_r.abs().sum() > 0 and gst_r.abs().sum() > 0
        exact = torch.equal(mems_t, mems_r) and torch.equal(last_t, last_r)
        print(kind, T, N, str(dtype), "static" if static else "per-step", "spikes", spikes,
              "forward exact" if exact else "forward close")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for kind, decay, width in [("subtract", 0.9, 25.0), ("hard_reset", 0.5, 1.0),
                               ("hard_reset", 0.8, 0.7)]:
        check(kind, 7, 300, decay, width, device)  # two programs of 256, a masked tail
        check(kind, 1, 5, decay, width, device)  # one step: only the peeled backward step
        check(kind, 6, 300, decay, width, device, static=True)  # one row read at every step
        check(kind, 5, 300, decay, width, device, dtype=torch.bfloat16)  # bf16 in and out
        check(kind, 4, 300, decay, width, device, dtype=torch.bfloat16, static=True)
    """
)

CHECKS = 15


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_kernels_match_pytorch_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", COMPARE], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("spikes") == CHECKS, out.stdout


@pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs a CUDA GPU")
def test_kernels_match_pytorch_on_the_gpu():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-c", COMPARE], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("spikes") == CHECKS, out.stdout


def test_not_available_on_cpu_without_the_interpreter():
    """A CPU-only process (no GPU, no TRITON_INTERPRET) falls back to PyTorch, and a broken
    triton import makes `available()` False rather than raising."""
    code = textwrap.dedent(
        """
        import importlib
        import sys
        from snncli import triton_lif
        print(triton_lif.available(), triton_lif.available())
        sys.modules["triton"] = None  # `import triton` now raises ImportError
        triton_lif = importlib.reload(triton_lif)
        print(triton_lif.triton is None, triton_lif.available())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True", "False"]
