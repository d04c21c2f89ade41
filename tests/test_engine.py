"""The fast engine's pieces: fused LIF layers, precision choice, CPU runtime tuning."""

import warnings

import pytest
import torch

from snncli import runtime
from snncli.errors import SnnError, SnnWarning
from snncli.models import create_model, list_models
from snncli.neurons import LeakyHardReset, LeakySubtract, LIFSequence
from snncli.runtime import keep_freed_memory, native_bf16, resolve_precision


def test_each_lif_layer_is_one_autograd_node_for_all_steps():
    current = torch.randn(40, 3, 5, requires_grad=True)
    spikes, _, _ = LeakySubtract()(current)
    node = spikes.grad_fn  # a view of the layer's [T, N] output
    assert node.next_functions[0][0].name() == LIFSequence.__name__ + "Backward"
    assert spikes.shape == (40, 3, 5) and set(spikes.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("layer", [LeakySubtract(), LeakyHardReset()])
def test_state_carries_across_calls_and_gradients_reach_the_initial_state(layer):
    torch.manual_seed(4)
    current = torch.randn(9, 2, 7) * 1.5 + 0.5
    state0 = torch.rand(2, 7, requires_grad=True)
    whole, _, _ = layer(current, state0)
    first, state, _ = layer(current[:4], state0)
    rest, _, _ = layer(current[4:], state)
    assert torch.equal(torch.cat([first, rest]), whole) and whole.sum() > 5
    weights = torch.randn_like(whole)
    (whole * weights).sum().backward()
    grad_whole = state0.grad.clone()
    state0.grad = None
    (torch.cat([first, rest]) * weights).sum().backward()
    torch.testing.assert_close(state0.grad, grad_whole)
    assert grad_whole.abs().sum() > 0


@pytest.mark.parametrize("layer", [LeakySubtract(), LeakyHardReset()])
def test_a_static_current_given_once_runs_like_the_same_current_at_every_step(layer):
    torch.manual_seed(6)
    static = (torch.randn(3, 4, 5) + 0.6).requires_grad_()
    state0 = torch.rand(3, 4, 5)
    spikes, last, mems = layer(static, state0, record_membrane=True, steps=7)
    repeated = static.detach().unsqueeze(0).repeat(7, 1, 1, 1).requires_grad_()
    spikes_r, last_r, mems_r = layer(repeated, state0, record_membrane=True)
    assert spikes.shape == (7, 3, 4, 5) and last.shape == (3, 4, 5)
    assert torch.equal(spikes, spikes_r) and torch.equal(mems, mems_r) and spikes.sum() > 10
    weights = torch.randn_like(spikes)
    ((spikes * weights).sum() + last.sum()).backward()
    ((spikes_r * weights).sum() + last_r.sum()).backward()
    torch.testing.assert_close(static.grad, repeated.grad.sum(0))
    assert static.grad.abs().sum() > 0


def test_precision_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    with pytest.raises(SnnError, match="unknown precision 'fp8'.*auto, fp32, bf16"):
        resolve_precision("fp8", cpu)
    with pytest.raises(SnnError, match="bf16 precision is supported on CPU and CUDA, not on mps"):
        resolve_precision("bf16", torch.device("mps"))


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_native_bf16_and_only_emulated_bf16_warns(monkeypatch, capsys, native):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("fp32", cpu) == "fp32"
        assert caught == []
        assert resolve_precision("bf16", cpu) == "bf16"  # asked for by name: runs either way
    if native:
        assert caught == []
    else:
        (warning,) = caught
        assert issubclass(warning.category, SnnWarning)
        assert str(warning.message).startswith("bf16 precision: this CPU has no native bf16")
        assert "emulated, about 10x slower than fp32" in str(warning.message)


def test_precision_defaults_to_auto_in_the_library_and_every_command():
    import inspect

    from snncli.cli import PrecisionOption
    from snncli.predict import predict_digits, predict_files
    from snncli.train import TrainOptions

    assert TrainOptions().precision == "auto"
    for function in (predict_digits, predict_files):
        assert inspect.signature(function).parameters["precision"].default == "auto"
    assert PrecisionOption.default == "auto"  # train, evaluate and predict share it


@pytest.mark.parametrize("name", list_models())
def test_bf16_runs_the_layers_in_bf16_and_keeps_results_close(name):
    torch.manual_seed(5)
    model = create_model(name)
    x = torch.rand(16, 1, 28, 28)
    seen = []
    hook = model.fc2.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    reference = model.readout(model(x, steps=10))
    model.precision = "bf16"
    record = model(x, steps=10)
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert record.dtype == torch.float32
    scores = model.readout(record)
    # bf16 rounds weights to 8 bits of mantissa: a few spikes move, the scores barely do.
    assert (scores - reference).abs().mean() < 0.05 * reference.abs().mean() + 0.05
    model.loss(record, torch.arange(16) % 10).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_allocator_tuning_is_safe_to_repeat():
    keep_freed_memory()
    keep_freed_memory()
    assert torch.ones(3).sum() == 3


def test_a_failing_gpu_kernel_falls_back_to_pytorch(monkeypatch):
    from snncli import neurons, triton_lif

    class Broken:
        def __getattr__(self, name):
            def fail(*args):
                raise RuntimeError("ptxas too old")

            return fail

    monkeypatch.setattr(neurons, "_kernels", lambda tensor: Broken())
    monkeypatch.setattr(triton_lif, "_AVAILABLE", True)
    current = torch.randn(6, 4) * 2
    with pytest.warns(UserWarning, match="Triton LIF kernels disabled.*ptxas too old"):
        spikes, _, _ = LeakySubtract()(current)
    assert triton_lif.available() is False  # switched off for the rest of the process
    monkeypatch.undo()
    assert torch.equal(spikes, LeakySubtract()(current)[0])


@pytest.mark.parametrize("name", list_models())
def test_calibrated_init_makes_every_spiking_layer_fire(name):
    torch.manual_seed(6)
    model = create_model(name)
    x = torch.rand(32, 1, 28, 28)
    steps = min(20, model.config.steps)  # the steps calibrate fits the rates over
    before = [model._firing_rate(x, i, steps) for i in range(len(model.lifs))]
    assert before[-1] < 0.01  # PyTorch's init leaves the last spiking layer (nearly) silent
    reached = model.calibrate(x)
    after = [model._firing_rate(x, i, steps) for i in range(len(model.lifs))]
    assert len(reached) == len(model.lifs)
    assert all(0.0255 <= r <= 0.0345 for r in after), after
    assert model.time_chunk is None  # restored


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_adding_the_conv_bias_after_pooling_changes_nothing(device):
    """max(x + b) = max(x) + b: the same spikes and gradients either way (fp32; on CUDA, where
    the option is used, bf16 too: cuDNN rounds the conv output before adding the bias)."""
    torch.manual_seed(6)
    model = create_model("csnn").to(device)
    with torch.no_grad():  # every layer spikes
        for p in model.parameters():
            p.mul_(3)
    x = torch.rand(8, 1, 28, 28, device=device)
    target = torch.arange(8, device=device)
    for precision in ["fp32"] + (["bf16"] if device == "cuda" else []):
        model.precision = precision
        results = []
        for pool_first in (False, True):
            model.pool_before_bias = pool_first
            model.zero_grad()
            record = model(x, steps=10)
            model.loss(record, target).backward()
            results.append((record.detach(), model.conv2.bias.grad.clone()))
        (plain, plain_grad), (pooled, pooled_grad) = results
        assert torch.equal(plain, pooled) and plain.sum() > 0, precision
        torch.testing.assert_close(pooled_grad, plain_grad, rtol=1e-4, atol=1e-6)
        assert plain_grad.abs().sum() > 0


def _snntorch_leaky(layer, beta):
    """snnTorch's Leaky with a learnable beta and `layer`'s threshold, reset and surrogate."""
    import snntorch
    from snntorch import surrogate

    from snncli.neurons import TriangleSpike

    if isinstance(layer, LeakySubtract):
        return snntorch.Leaky(beta=torch.tensor(beta), learn_beta=True, threshold=1.0,
                              spike_grad=surrogate.fast_sigmoid(slope=layer.width))
    return snntorch.Leaky(beta=torch.tensor(beta), learn_beta=True, threshold=1.0,
                          reset_mechanism="zero",
                          spike_grad=lambda x: TriangleSpike.apply(x, layer.width))


@pytest.mark.parametrize("kind", [LeakySubtract, LeakyHardReset])
def test_a_learned_decay_gets_snntorchs_gradient(kind):
    """dL/d(decay) of the fused layer equals snnTorch's learn_beta gradient, through the
    sigmoid that keeps the decay in (0, 1); a fixed decay has no parameter at all."""
    assert list(kind(0.6).parameters()) == []
    torch.manual_seed(6)
    layer = kind(0.6, 1.0, 5.0 if kind is LeakySubtract else 1.0, learn_decay=True)
    assert layer.decay().item() == pytest.approx(0.6)
    current = torch.randn(12, 4, 9) * 1.2 + 0.4
    state0 = torch.rand(4, 9)
    weights = torch.randn(12, 4, 9)
    spikes, _, _ = layer(current, state0)
    (spikes * weights).sum().backward()
    reference = _snntorch_leaky(layer, 0.6)
    mem, record = state0.clone(), []
    for t in range(12):
        spk, mem = reference(current[t], mem)
        record.append(spk)
    assert torch.equal(torch.stack(record), spikes) and 10 < spikes.sum() < spikes.numel() - 10
    (torch.stack(record) * weights).sum().backward()
    grad_decay = layer.decay_logit.grad / (0.6 * 0.4)  # d sigmoid(w)/dw = beta (1 - beta)
    assert reference.beta.grad.abs() > 0.1
    torch.testing.assert_close(grad_decay, reference.beta.grad, rtol=1e-4, atol=1e-5)


def test_a_learned_decay_must_start_inside_zero_one():
    with pytest.raises(ValueError, match=r"inside \(0, 1\), not at 1.0"):
        LeakySubtract(1.0, learn_decay=True)
