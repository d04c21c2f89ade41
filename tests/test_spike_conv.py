"""conv2 of spikes by table lookup: the dense convolution's values and gradients."""

import pytest
import torch
from torch.nn import functional as F

from snncli import spike_conv
from snncli.models import create_model

from conftest import assert_csnn_alike_with_and_without


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.15, 1.0])
@pytest.mark.parametrize("bias", [True, False])
def test_lookup_conv_gives_the_dense_convolution_and_its_gradients(rate, bias):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(16, 24, 3, padding=1, bias=bias)
    spikes = (torch.rand(5, 9, 7, 16) < rate).float().requires_grad_()  # [N, H, W, C]
    table = spike_conv.lookup_table(conv.weight, conv.bias)
    assert table.shape == (9 * 2 * 256, 24)
    looked_up = spike_conv.spike_conv3x3(spikes, conv, table)
    dense_input = spikes.detach().clone().requires_grad_()
    dense = conv(dense_input.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(looked_up, dense, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(dense)
    (looked_up * weights).sum().backward()
    grads = [spikes.grad, conv.weight.grad] + ([conv.bias.grad] if bias else [])
    conv.zero_grad()
    (dense * weights).sum().backward()
    dense_grads = [dense_input.grad, conv.weight.grad] + ([conv.bias.grad] if bias else [])
    for ours, reference in zip(grads, dense_grads, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    if rate:
        assert conv.weight.grad.abs().sum() > 0


def test_only_fp32_3x3_convolutions_of_cpu_tensors_are_looked_up():
    conv = torch.nn.Conv2d(32, 64, 3, padding=1)
    spikes = torch.zeros(2, 14, 14, 32)
    assert spike_conv.usable(spikes, conv)
    assert not spike_conv.usable(spikes.bfloat16(), conv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not spike_conv.usable(spikes, conv)  # native bf16 convolutions are faster
    assert not spike_conv.usable(spikes, torch.nn.Conv2d(32, 64, 5, padding=2))
    assert not spike_conv.usable(spikes[..., :12], torch.nn.Conv2d(12, 64, 3, padding=1))


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_csnn_trains_and_infers_alike_with_and_without_the_lookup(norm):
    assert_csnn_alike_with_and_without("lookup_conv", norm, seed=3)


def test_the_csnn_in_bf16_keeps_the_dense_convolution(monkeypatch):
    def refuse(*args):
        raise AssertionError("looked up under bf16 autocast")

    monkeypatch.setattr(spike_conv, "_lookup", refuse)
    model = create_model("csnn")
    model.precision = "bf16"
    assert model(torch.rand(2, 1, 28, 28), steps=3).shape == (3, 2, 10)
    model.precision = "fp32"
    with pytest.raises(AssertionError, match="looked up"):
        model(torch.rand(2, 1, 28, 28), steps=3)


def test_lookup_rows_follow_the_bit_order_of_the_channels():
    conv = torch.nn.Conv2d(8, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(72.0).view(1, 8, 3, 3))
    table = spike_conv.lookup_table(conv.weight, None)
    # centre tap (4), group 0, pattern 0b101 = channels 0 and 2: weights [c, 1, 1] = 4 + 22
    assert table[4 * 256 + 0b101, 0] == 4 + 22
    spikes = torch.zeros(1, 3, 3, 8)
    spikes[0, 1, 1, [0, 2]] = 1
    assert spike_conv.spike_conv3x3(spikes, conv, table)[0, 1, 1, 0] == 26
    dense = F.conv2d(spikes.permute(0, 3, 1, 2), conv.weight, padding=1)
    assert torch.equal(spike_conv.spike_conv3x3(spikes, conv, table), dense.permute(0, 2, 3, 1))


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.3, 1.0])
def test_the_weight_gradient_summed_from_the_spikes_is_the_dense_one(rate):
    torch.manual_seed(5)
    spikes = (torch.rand(3, 6, 5, 16) < rate).float()  # [N, H, W, C]
    spikes[1, 0, 0, :] = 1  # a corner: most taps carry it outside the image
    grad = torch.randn(3, 6, 5, 24)
    weight = torch.randn(24, 16, 3, 3)
    dense = torch.ops.aten.convolution_backward(
        grad.permute(0, 3, 1, 2), spikes.permute(0, 3, 1, 2), weight, None, [1, 1], [1, 1],
        [1, 1], False, [0, 0], 1, [False, True, False])[1]
    summed = spike_conv.summed_weight_grad(spikes, grad)
    assert summed.shape == (24, 16, 3, 3)
    torch.testing.assert_close(summed, dense, rtol=1e-5, atol=1e-5)


def test_sparse_spikes_get_the_summed_weight_gradient(monkeypatch):
    calls = []
    real = spike_conv.summed_weight_grad
    monkeypatch.setattr(spike_conv, "summed_weight_grad",
                        lambda *args: calls.append(1) or real(*args))
    conv = torch.nn.Conv2d(8, 4, 3, padding=1)
    table = spike_conv.lookup_table(conv.weight, conv.bias)
    for ones, summed in ((0.05, True), (0.5, False)):
        calls.clear()
        spikes = torch.zeros(2, 5, 5, 8)
        spikes.view(-1)[: int(ones * spikes.numel())] = 1
        spike_conv.spike_conv3x3(spikes, conv, table).sum().backward()
        assert calls == ([1] if summed else [])
