"""A third model, one file (tests/tiny_model.py) plus one registration, works through every
command: it trains, evaluates, predicts and resumes like the built-in models."""

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.models import list_models, register_model, unregister_model

from conftest import paper
from tiny_model import SPEC, TinyConfig

runner = CliRunner()
PARAMETERS = 784 * 32 + 32 + 32 * 10 + 10  # 25,450; batch norm after fc1 adds 2 x 32


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny():
    """The tiny model registered for this module's tests only."""
    register_model(SPEC)
    yield SPEC
    unregister_model(SPEC.name)


def train_tiny(data, out, *extra):
    """`snn train --model tiny` for 2 epochs (fp32, so evaluate can match its figures)."""
    return run("train", "--model", "tiny", "--data-dir", data, "--out", out, "--device", "cpu",
               "--precision", "fp32", "--epochs", 2, *extra)


@pytest.fixture(scope="module")
def trained(tiny, tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    result = train_tiny(tiny_mnist, out)
    assert result.exit_code == 0, result.output
    return out, result


def test_tiny_is_registered_only_while_the_tests_need_it(tiny):
    assert list_models() == ["csnn", "mlp", "tiny", "wide"]
    result = run("models")
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "25,450" in result.output


def test_tiny_trains_through_the_cli(trained):
    out, result = trained
    assert "training finished" in result.output and "recipe seed" in result.output
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["tiny.last.pt", "tiny.metrics.jsonl", "tiny.png", "tiny.pt"]
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["model"] == "tiny" and ckpt["epoch"] in (1, 2)
    # The recipe set the config fields its mapping names; the others kept their defaults.
    assert ckpt["config"] == dataclasses.asdict(
        TinyConfig(steps=8, slope=5.0, norm="batch", learn_decay=False)
    )
    assert sum(v.numel() for k, v in ckpt["state_dict"].items()
               if not k.startswith("norm1.running") and "num_batches" not in k) == PARAMETERS + 64
    assert ckpt["recipe"]["recipe"] == "seed" and ckpt["recipe"]["loss"] == "count"
    assert ckpt["metrics"]["test_accuracy"] > 0.6  # chance is 0.1
    lines = (out.parent / "tiny.metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_tiny_evaluates_to_the_accuracy_training_recorded(trained, tiny_mnist):
    out, _ = trained
    result = run("evaluate", out, "--data-dir", tiny_mnist, "--json", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    metrics = torch.load(out, weights_only=True)["metrics"]
    assert report["model"] == "tiny" and report["total"] == metrics["test_images"] == 200
    assert report["accuracy"] == metrics["test_accuracy"]
    assert list(report["firing_rates"]) == ["lif1 (fc1)", "lif2 (output)"]
    assert report["dense_macs_per_image"] == 784 * 32
    assert 0 < report["mean_output_spikes"] <= 8 * 10


def test_tiny_predicts_images_and_mnist_samples(trained, tiny_mnist, tmp_path):
    out, _ = trained
    images = []
    for digit in (0, 3, 7):
        images.append(tmp_path / f"{digit}.png")
        paper(digit).save(images[-1])
    result = run("predict", *images, "--checkpoint", out, "--json", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["path"] for p in predictions] == [str(p) for p in images]
    for p in predictions:
        assert p["scores"] == p["spike_counts"] and len(p["spike_counts"]) == 10
        assert all(isinstance(c, int) and 0 <= c <= 8 for c in p["spike_counts"])
    result = run("predict", "--sample", 50, "--checkpoint", out, "--data-dir", tiny_mnist,
                 "--json", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    samples = json.loads(result.stdout)
    assert len(samples) == 50 and sum(p["correct"] for p in samples) >= 30


def test_tiny_resumed_for_another_epoch_is_the_run_trained_three_epochs_at_once(
    trained, tiny_mnist, tmp_path
):
    out, _ = trained
    last = out.with_name("tiny.last.pt")
    result = run("train", "--resume", last, "--epochs", 3, "--data-dir", tiny_mnist)
    assert result.exit_code == 0, result.output
    whole = tmp_path / "tiny.pt"
    result = train_tiny(tiny_mnist, whole, "--epochs", 3)
    assert result.exit_code == 0, result.output
    for name in ("tiny.pt", "tiny.last.pt"):
        a = torch.load(out.with_name(name), weights_only=True)
        b = torch.load(whole.with_name(name), weights_only=True)
        assert a["epoch"] == b["epoch"] and a["state_dict"].keys() == b["state_dict"].keys()
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 3


def test_tiny_engine_matches_its_snntorch_reference(tiny, run_both_backends):
    """Output spikes and every parameter's gradient, as for the built-in models."""
    torch.manual_seed(3)
    model = SPEC.build(TinyConfig(learn_decay=True))
    with torch.no_grad():  # strong weights, so both layers spike
        for p in model.parameters():
            p.mul_(4)
    results = run_both_backends(model, torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 5, 9]), 8)
    (ours, ours_grads), (ref, ref_grads) = results["engine"], results["snntorch"]
    assert torch.equal(ours, ref) and ours.sum() > 0
    for g_ours, g_ref in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-5)
