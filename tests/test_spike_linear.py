"""fc1 of spikes by summing weight rows: the dense product's values and gradients."""

import pytest
import torch

from snncli import spike_linear
from snncli.models import create_model

from conftest import assert_csnn_alike_with_and_without


def _dense_and_summed(spikes, table, bias):
    """(dense result and gradients, summed result and gradients) for one random output
    weighting; gradients for spikes, table and bias (None where not asked for)."""
    weights = torch.randn(spikes.shape[0], table.shape[1])
    runs = []
    for summed in (False, True):
        inputs = [t.detach().clone().requires_grad_() if t is not None else None
                  for t in (spikes, table, bias)]
        if summed:
            out = spike_linear._SpikeLinear.apply(*inputs)
        else:
            out = inputs[0] @ inputs[1] + (inputs[2] if bias is not None else 0)
        (out * weights).sum().backward()
        runs.append((out.detach(), [t.grad if t is not None else None for t in inputs]))
    return runs


@pytest.mark.parametrize("rate", [0.0, 0.03, 0.3, 1.0])
@pytest.mark.parametrize("bias", [True, False])
def test_summed_rows_give_the_dense_product_and_its_gradients(rate, bias):
    torch.manual_seed(2)
    spikes = (torch.rand(37, 300) < rate).float()
    spikes[5] = 0  # a sample without spikes: an empty bag
    table, bias_vector = torch.randn(300, 24), torch.randn(24) if bias else None
    (dense, dense_grads), (summed, summed_grads) = _dense_and_summed(spikes, table, bias_vector)
    torch.testing.assert_close(summed, dense, rtol=1e-5, atol=1e-5)
    for ours, reference in zip(summed_grads, dense_grads, strict=True):
        if reference is None:
            assert ours is None
        else:
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    if rate:
        assert summed_grads[1].abs().sum() > 0
    assert torch.equal(summed[5], bias_vector if bias else torch.zeros(24))


def test_sparse_spikes_are_summed_and_dense_ones_multiplied(monkeypatch):
    calls = []
    real = spike_linear._SpikeLinear.apply
    monkeypatch.setattr(spike_linear._SpikeLinear, "apply",
                        lambda *args: calls.append(1) or real(*args))
    weight, bias = torch.randn(8, 100), torch.randn(8)
    table = weight.t().contiguous()
    sparse = torch.zeros(10, 100)
    sparse[:, :10] = 1  # 10% ones
    dense = torch.zeros(10, 100)
    dense[:, :40] = 1  # 40% ones
    torch.testing.assert_close(spike_linear.spike_linear(sparse, weight, bias, table),
                               sparse @ table + bias)
    assert calls == [1]
    torch.testing.assert_close(spike_linear.spike_linear(dense, weight, bias, table),
                               dense @ table + bias)
    assert calls == [1]  # the dense product, not the sums
    spike_linear.spike_linear(sparse, weight, bias)
    assert calls == [1]  # no table: the dense product
    assert spike_linear.spike_linear(torch.zeros(0, 100), weight, bias, table).shape == (0, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert spike_linear.spike_linear(sparse, weight, bias, table).dtype == torch.bfloat16
    assert calls == [1]  # bf16 matrix products under autocast


def test_only_fp32_cpu_spikes_outside_autocast_are_summed():
    spikes = torch.zeros(4, 16)
    assert spike_linear.usable(spikes)
    assert not spike_linear.usable(spikes.bfloat16())
    assert not spike_linear.usable(spikes.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not spike_linear.usable(spikes)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_csnn_trains_and_infers_alike_with_and_without_summed_rows(norm, monkeypatch):
    monkeypatch.setattr(spike_linear, "MAX_DENSITY", 1.0)  # always summed when asked
    assert_csnn_alike_with_and_without("spike_rows", norm, seed=4)


def test_the_csnn_runs_an_empty_share_of_a_batch():
    # A data-parallel process can be handed no images of a small last batch.
    model = create_model("csnn")
    model.time_chunk = 2
    assert model(torch.rand(0, 1, 28, 28), steps=5).shape == (5, 0, 10)
