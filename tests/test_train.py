"""The training loop's weight average (recipe key `ema`) and its evaluation schedule."""

import json

import pytest
import torch

from snncli.models import create_model, get_model_spec
from snncli.recipes import RecipeError
from snncli.train import TrainOptions, train
from snncli.train_setup import make_average, update_average


def test_average_follows_weights_and_batch_norm_statistics():
    torch.manual_seed(0)
    model = create_model("csnn", steps=2, norm="batch")
    averaged = make_average(model, 0.5)
    expected = {k: v.clone() for k, v in model.state_dict().items()}  # first update copies
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for step in range(3):
        x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
        loss = model.loss(model(x), y, 0.0, "rate")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        update_average(averaged, model)
        for name, value in model.state_dict().items():
            if step and value.is_floating_point():
                expected[name] = 0.5 * expected[name] + 0.5 * value
            elif not step:
                expected[name] = value.clone()
    got = averaged.module.state_dict()
    for name in ("conv1.weight", "fc2.bias", "norm1.weight", "norm3.running_mean"):
        torch.testing.assert_close(got[name], expected[name])
        assert not torch.equal(got[name], model.state_dict()[name])  # an average, not a copy
    assert got["norm2.num_batches_tracked"] == model.norm2.num_batches_tracked == 3  # a count
    assert make_average(model, 0.0) is None


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_decays_outside_zero_to_one_are_refused(decay):
    recipe = get_model_spec("mlp").recipes["seed"].with_overrides({"ema": decay})
    assert recipe.setting_problems() == [f"ema {decay!r} must be in [0, 1)"]


def test_a_narrower_surrogate_changes_training_but_not_the_forward_pass(tiny_mnist, tmp_path):
    """The recipe's surrogate is the csnn's fast-sigmoid slope: the same seed gives the same
    initial network (same forward pass), different gradients, so different trained weights."""
    def run(surrogate):
        options = TrainOptions(
            model="csnn", recipe="fast",
            overrides={"epochs": 1, "steps": 2, "surrogate": surrogate}, plot=False,
            data_dir=str(tiny_mnist), out=str(tmp_path / f"s{surrogate}.pt"), train_limit=128,
            test_limit=20,
        )
        return torch.load(train(options).last_path, weights_only=True)

    images = torch.rand(4, 1, 28, 28)
    forward = []
    for slope in (25.0, 5.0):
        torch.manual_seed(0)
        forward.append(create_model("csnn", steps=2, slope=slope)(images))
    assert torch.equal(*forward)

    narrow, wide = run(25.0), run(5.0)
    assert (narrow["config"]["slope"], wide["config"]["slope"]) == (25.0, 5.0)
    assert wide["recipe"]["surrogate"] == 5.0
    assert not torch.equal(narrow["state_dict"]["conv1.weight"], wide["state_dict"]["conv1.weight"])
    with pytest.raises(RecipeError, match="surrogate -1.0 must be above 0"):
        get_model_spec("csnn").recipes["best"].with_overrides({"surrogate": -1.0}).check()


def test_checkpoints_hold_the_average_and_metrics_say_what_it_added(tiny_mnist, tmp_path):
    def run(ema: float, name: str):
        options = TrainOptions(
            model="mlp", recipe="seed", overrides={"epochs": 3, "ema": ema}, eval_epochs=2,
            data_dir=str(tiny_mnist), out=str(tmp_path / name), train_limit=256, test_limit=100,
            plot=False,
        )
        result = train(options)
        rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
        return result, rows, torch.load(result.last_path, weights_only=True)

    plain, plain_rows, plain_ckpt = run(0.0, "plain.pt")
    averaged, rows, ckpt = run(0.9, "ema.pt")
    # Evaluated after epoch 2 (every 2) and 3 (the last), not after epoch 1.
    assert [r["epoch"] for r in rows] == [2, 3] == [r["epoch"] for r in plain_rows]
    assert "unaveraged_test_accuracy" not in plain_rows[-1]
    # Training itself is unchanged (CPU runs are deterministic): the unaveraged model scores
    # what the run without an average scored; the checkpoint holds different, averaged weights.
    assert rows[-1]["unaveraged_test_accuracy"] == plain_rows[-1]["test_accuracy"]
    assert ckpt["recipe"]["ema"] == 0.9 and plain_ckpt["recipe"]["ema"] == 0.0
    assert not torch.equal(ckpt["state_dict"]["fc1.weight"], plain_ckpt["state_dict"]["fc1.weight"])
    assert ckpt["metrics"]["test_accuracy"] == rows[-1]["test_accuracy"]


def test_eval_every_with_eval_epochs_evaluates_each_iteration_once(tiny_mnist, tmp_path):
    """2 iterations per epoch, --eval-every 1 --eval-epochs 2 over 3 epochs: an evaluation after
    every iteration, the epoch-end ones of epochs 2 and 3 standing in for the mid-epoch ones
    (none twice), and the unaveraged score only on the very last."""
    options = TrainOptions(
        model="mlp", recipe="seed", overrides={"epochs": 3, "ema": 0.5}, eval_epochs=2,
        eval_every=1, data_dir=str(tiny_mnist), out=str(tmp_path / "m.pt"), train_limit=256,
        test_limit=50, val_size=0, plot=False,
    )
    result = train(options)
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert [(r["iteration"], r["epoch"]) for r in rows] == [
        (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)
    ]
    assert ["unaveraged_test_accuracy" in r for r in rows] == [False] * 5 + [True]
