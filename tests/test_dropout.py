"""Dropout of the spikes into the fully connected layers: in training only, one mask per image
for all of its time steps, set by the recipe and stored in the checkpoint."""

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.models import create_model
from snncli.models.base import weight_in_hwc_order

# The fully connected layers whose input spikes are dropped, in the order their masks are
# drawn, and whether the engine feeds the layer channels-last spikes (its mask then follows
# the (h, w, c) order of `weight_in_hwc_order`).
DROPPED = {
    "csnn": [("fc1", True), ("fc2", False)],
    "wide": [("fc1", True), ("fc2", False)],
    "mlp": [("fc2", False), ("fc3", False)],
}


def built(name: str, dropout: float):
    torch.manual_seed(0)
    return create_model(name, steps=4, norm="batch", dropout=dropout)


def recorded_masks(model, monkeypatch) -> list:
    masks = []
    draw = model.spike_dropout

    def record(batch, features):
        mask = draw(batch, features)
        masks.append(mask)
        return mask

    monkeypatch.setattr(model, "spike_dropout", record)
    return masks


@pytest.mark.parametrize("name", sorted(DROPPED))
def test_a_dropped_neuron_passes_nothing_at_any_step_and_the_rest_are_scaled(name, monkeypatch):
    model = built(name, dropout=0.5).train()
    masks = recorded_masks(model, monkeypatch)
    x = torch.rand(6, 1, 28, 28)
    record = model(x)
    model.loss(record, torch.arange(6) % 10, kind=model.losses[0]).backward()

    for mask, (layer_name, channels_last) in zip(masks, DROPPED[name], strict=True):
        layer = getattr(model, layer_name)
        assert mask.shape == (6, layer.in_features)
        assert set(mask.unique().tolist()) == {0.0, 2.0}  # kept spikes count 1 / (1 - 0.5)
        assert abs((mask == 0).float().mean().item() - 0.5) < 0.1
        grad = layer.weight.grad
        if channels_last:
            grad = weight_in_hwc_order(grad, 7, 7)
        # A neuron dropped for every image of the batch gave its layer no input at any step.
        dropped_for_all = (mask == 0).all(0)
        assert dropped_for_all.sum() > 0
        assert torch.count_nonzero(grad[:, dropped_for_all]) == 0
        assert torch.count_nonzero(grad[:, ~dropped_for_all]) > 0


def output_current(model, name: str, x) -> torch.Tensor:
    """The input current of the output layer (the last of DROPPED) at every step."""
    currents = []
    last = getattr(model, DROPPED[name][-1][0])
    hook = last.register_forward_hook(lambda module, inputs, output: currents.append(output))
    try:
        model(x)
    finally:
        hook.remove()
    return torch.cat(currents)


@pytest.mark.parametrize("name", sorted(DROPPED))
def test_dropout_changes_training_and_nothing_in_evaluation(name):
    plain, dropping = built(name, dropout=0.0), built(name, dropout=0.5)
    dropping.load_state_dict(plain.state_dict())
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(1)
    trained_plain = output_current(plain.train(), name, x)
    torch.manual_seed(1)
    assert not torch.equal(output_current(dropping.train(), name, x), trained_plain)
    # Evaluation uses the whole network: scores and the output layer's input current agree.
    plain.eval(), dropping.eval()
    a, b = plain.classify(x), dropping.classify(x)
    assert torch.equal(a.record, b.record) and torch.equal(a.ranking, b.ranking)
    assert dropping.spike_dropout(6, 10) is None
    assert plain.train().spike_dropout(6, 10) is None  # dropout 0: no mask


def test_a_dropout_mask_is_drawn_from_the_generator_a_resume_restores():
    model = built("mlp", dropout=0.3).train()
    torch.manual_seed(7)
    first = model.spike_dropout(4, 100)
    torch.manual_seed(7)
    assert torch.equal(model.spike_dropout(4, 100), first)


def test_a_process_s_share_of_a_batch_gets_its_rows_of_the_whole_batch_s_masks():
    """In a data-parallel run every process draws the whole batch's mask (the generators stay
    in step) and keeps its images' rows: the masks one process would give those images."""
    model = built("mlp", dropout=0.3).train()
    torch.manual_seed(7)
    whole = model.spike_dropout(5, 100)
    shares = []
    for start, stop in [(0, 3), (3, 5), (5, 5)]:  # the last process holds no image
        torch.manual_seed(7)
        with model.batch_share(start, 5):
            shares.append(model.spike_dropout(stop - start, 100))
    assert [tuple(m.shape) for m in shares] == [(3, 100), (2, 100), (0, 100)]
    assert torch.equal(torch.cat(shares), whole)
    assert model.share is None  # only within the block
    assert not torch.equal(whole[:2], whole[3:5])  # different images, different masks


def test_train_stores_the_dropout_and_refuses_one_out_of_range(tiny_mnist, tmp_path):
    out = tmp_path / "d.pt"
    runner = CliRunner()
    args = ["train", "-m", "mlp", "--recipe", "robust", "--epochs", "1", "--data-dir",
            str(tiny_mnist), "--train-limit", "128", "--test-limit", "20", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--dropout", "0.25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = torch.load(out, weights_only=True)
    assert saved["recipe"]["dropout"] == 0.25 and saved["config"]["dropout"] == 0.25

    result = runner.invoke(app, [*args, "--dropout", "1", "--out", str(tmp_path / "e.pt")])
    assert result.exit_code == 2
    assert "dropout" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "e.pt").exists()
