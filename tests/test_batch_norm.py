"""norm="batch": batch norm over (time x batch) before the hidden LIF layers."""

import pytest
import torch

from snncli.checkpoint import (
    build_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from snncli.models import create_model, get_model_spec, list_models
from snncli.recipes import Recipe

BATCH_NORMS = {"csnn": 3, "mlp": 2, "wide": 4}


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_adds_one_norm_per_hidden_layer_and_none_otherwise(name):
    def norms(model):
        return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    assert norms(create_model(name)) == []
    assert len(norms(create_model(name, norm="batch"))) == BATCH_NORMS[name]
    assert "batch" in Recipe.__dataclass_fields__["norm"].metadata["check"][1]  # a choice


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_makes_every_hidden_layer_fire_from_the_start(name):
    torch.manual_seed(7)
    x = torch.rand(32, 1, 28, 28)
    plain, normed = create_model(name), create_model(name, norm="batch")
    last_hidden = BATCH_NORMS[name] - 1  # the LIF layer after the last norm
    assert plain._firing_rate(x, last_hidden, 10) < 0.01  # silent without it
    rates = [normed._firing_rate(x, i, 10) for i in range(BATCH_NORMS[name])]
    assert all(r > 0.05 for r in rates), rates


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_statistics_span_time_and_batch(name):
    torch.manual_seed(8)
    model = create_model(name, norm="batch")
    seen = []
    model.norm2.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    model(torch.rand(8, 1, 28, 28), steps=5)
    out = seen[0]
    assert out.shape[0] == 5 * 8  # one call over every step of every image
    dims = [0, 2, 3] if out.ndim == 4 else [0]
    torch.testing.assert_close(out.mean(dims), torch.zeros(out.shape[1]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_training_spans_all_steps_whatever_the_time_chunk(name):
    """A CPU runs time steps in chunks; in training that must not change the statistics (nor
    the model trained), or a recipe would train a different model on a CPU than on a GPU."""
    torch.manual_seed(10)
    chunked = create_model(name, norm="batch")
    whole = create_model(name, norm="batch")
    whole.load_state_dict(chunked.state_dict())
    chunked.time_chunk = 2
    calls = []
    chunked.norm2.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(chunked(x, steps=5), whole(x, steps=5), atol=0, rtol=0)
    assert calls == [5 * 8]
    for a, b in zip(chunked.buffers(), whole.buffers(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)  # running statistics too
    chunked.eval()  # inference normalises with fixed statistics: chunks are free again
    calls.clear()
    with torch.no_grad():
        chunked(x, steps=5)
    assert calls == [2 * 8, 2 * 8, 1 * 8]


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_engine_matches_the_snntorch_reference_in_eval(name, run_both_backends):
    torch.manual_seed(9)
    model = create_model(name, norm="batch")
    with torch.no_grad():  # a stronger last layer, so the (unnormalised) output spikes too
        model.synapses()[-1].weight.mul_(6)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # running statistics = those of the batches seen
    x = torch.rand(6, 1, 28, 28)
    model(x, steps=6)  # training mode: running statistics move off their initial values
    model.eval()
    results = run_both_backends(model, x, torch.tensor([0, 1, 2, 3, 4, 5]), steps=6)
    (ref, ref_grads), (ours, our_grads) = results["snntorch"], results["engine"]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert ours.abs().sum() > 0
    for g_ours, g_ref in zip(our_grads, ref_grads, strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_calibration_scales_the_norms_and_keeps_their_running_statistics(name):
    torch.manual_seed(10)
    model = create_model(name, norm="batch")
    x = torch.rand(32, 1, 28, 28)
    model(x, steps=4)
    kept = {k: v.clone() for k, v in model.named_buffers()}
    gains = [layer.weight.clone() for layer in model.synapses()]
    reached = model.calibrate(x)
    assert all(0.0255 <= r <= 0.0345 for r in reached), reached
    assert not torch.equal(model.synapses()[0].weight, gains[0])  # the norm's scale moved
    for key, value in model.named_buffers():
        assert torch.equal(value, kept[key]), key


@pytest.mark.parametrize("name", list_models())
def test_batch_norm_checkpoint_round_trip_keeps_running_statistics(name, tmp_path):
    torch.manual_seed(11)
    model = create_model(name, norm="batch", steps=4)
    x = torch.rand(5, 1, 28, 28)
    for _ in range(3):
        model(x)
    model.eval()
    spec = get_model_spec(name)
    recipe = spec.recipes[spec.default_recipe].to_dict()
    path = save_checkpoint(
        build_checkpoint(name, model, recipe=recipe, metrics={}, epoch=1), tmp_path / "m.pt"
    )
    loaded = model_from_checkpoint(load_checkpoint(path))
    assert loaded.config.norm == "batch"
    assert torch.equal(loaded.norm1.running_mean, model.norm1.running_mean)
    assert loaded.norm1.running_mean.abs().sum() > 0
    assert torch.equal(loaded(x), model(x))
