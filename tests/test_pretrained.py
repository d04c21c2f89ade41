"""Bundled weights: compacted checkpoints that load as usual, chosen when nothing else is."""

import os
import shutil
from pathlib import Path

import bundle_weights
import pytest
import torch

from snncli import choice, pretrained
from snncli.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from snncli.data import load_split, normalise
from snncli.errors import CheckpointError
from snncli.evaluate import evaluate_model
from snncli.predict import predict_files

from conftest import paper, synthetic_split


def test_compact_stores_int8_rows_and_drops_the_training_state(mlp_checkpoint, tmp_path):
    last = mlp_checkpoint.with_name("mlp.last.pt")
    ckpt = load_checkpoint(last)
    assert ckpt.training_state is not None
    small = ckpt.compacted("mlp.last.pt")
    assert "training_state" not in small and small["bundled"]["source"] == "mlp.last.pt"
    assert small["format_version"] == 2 and set(small["weight_scales"]) == {
        k for k, v in ckpt.state_dict.items() if v.dim() >= 2
    }
    assert small["state_dict"]["fc1.weight"].dtype == torch.int8
    assert small["state_dict"]["fc1.bias"].dtype == torch.float16
    path = save_checkpoint(small, tmp_path / "mlp.pt")
    assert path.stat().st_size < 0.3 * mlp_checkpoint.stat().st_size
    loaded = load_checkpoint(path)
    scale = small["weight_scales"]["fc1.weight"][:, None]
    error = (loaded.state_dict["fc1.weight"] - ckpt.state_dict["fc1.weight"]).abs()
    assert bool((error <= scale / 2 + 1e-7).all())  # rounding to the nearest of 255 levels
    full, small_model = model_from_checkpoint(ckpt), model_from_checkpoint(loaded)
    assert small_model.fc1.weight.dtype == torch.float32  # loads into the usual model
    images, _ = synthetic_split(100, seed=5)  # digits, not noise: away from class boundaries
    x = normalise(torch.from_numpy(images), **ckpt.normalisation)
    agree = small_model(x).mean(0).argmax(-1) == full(x).mean(0).argmax(-1)
    assert agree.float().mean() >= 0.97


def test_half_precision_compaction_stays_available(mlp_checkpoint):
    small = load_checkpoint(mlp_checkpoint).compacted("mlp.pt", dtype="float16")
    assert "weight_scales" not in small and small["format_version"] == 1
    assert small["state_dict"]["fc1.weight"].dtype == torch.float16


def test_damaged_int8_scales_are_one_line(mlp_checkpoint, tmp_path):
    small = load_checkpoint(mlp_checkpoint).compacted("mlp.pt")
    small["weight_scales"]["fc1.weight"] = small["weight_scales"]["fc1.weight"][:3]
    small["weight_scales"]["fc2.weight"] = torch.full_like(small["weight_scales"]["fc2.weight"],
                                                           float("nan"))
    path = save_checkpoint(small, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as failure:
        load_checkpoint(path)
    assert str(failure.value) == (
        f"{path}: weight_scales fc1.weight must hold one finite fp32 scale per row of an int8 "
        "weight (and 1 more problem)")


def test_bundling_records_the_accuracy_before_and_after(mlp_checkpoint, tiny_mnist, monkeypatch,
                                                       tmp_path):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    line = bundle_weights.bundle(str(mlp_checkpoint), str(tiny_mnist), None, max_change=100)
    assert "MNIST test" in line and line.startswith(f"{mlp_checkpoint} -> ")
    bundled = load_checkpoint(tmp_path / "bundled" / "mlp.pt")
    test = load_split("test", tiny_mnist)
    for ckpt, key in ((load_checkpoint(mlp_checkpoint), "before"), (bundled, "after")):
        scored = evaluate_model(ckpt.build_model(), test, ckpt.normalisation, torch.device("cpu"))
        assert getattr(bundled.bundled, f"test_accuracy_{key}") == scored.accuracy


def test_bundling_refuses_to_move_the_mnist_accuracy(mlp_checkpoint, tiny_mnist, monkeypatch,
                                                     tmp_path):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    with pytest.raises(SystemExit, match="moves its MNIST accuracy"):
        bundle_weights.bundle(str(mlp_checkpoint), str(tiny_mnist), None, max_change=-1.0)
    assert not (tmp_path / "bundled" / "mlp.pt").exists()


def test_bundling_records_the_user_digit_accuracy(mlp_checkpoint, tiny_mnist, monkeypatch,
                                                  tmp_path, capsys):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    # A tiny test set: one image is 0.5 points, which rounding to int8 may move.
    monkeypatch.setattr(bundle_weights, "MAX_ACCURACY_CHANGE", 100)
    digits = tmp_path / "digits"
    digits.mkdir()
    for digit in range(10):
        paper(digit).save(digits / f"{digit}_paper_{digit:04d}.png")
    bundle_weights.main([str(mlp_checkpoint), "--data-dir", str(tiny_mnist),
                         "--user-digits", str(digits)])
    bundled = load_checkpoint(tmp_path / "bundled" / "mlp.pt")
    _, results = predict_files(bundled, [str(digits)], torch.device("cpu"),
                               precision="fp32")
    right = sum(r.prediction == int(Path(r.path).name[0]) for r in results)
    assert bundled.bundled.user_digits_images == 10
    assert bundled.bundled.user_digits_accuracy == right / 10
    assert f"user digits {right / 10:.2%}" in capsys.readouterr().out


def test_the_newest_checkpoint_is_chosen_else_the_bundled_weights(mlp_checkpoint, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError,
                       match="no finished checkpoint in .* and no bundled csnn weights"):
        choice.choose_checkpoint(None, folder=folder)
    (tmp_path / "bundled").mkdir()
    shutil.copy(mlp_checkpoint, tmp_path / "bundled" / "mlp.pt")
    path, why = choice.choose_checkpoint(None, "mlp", folder=folder)
    assert path == tmp_path / "bundled" / "mlp.pt" and "bundled mlp weights" in why
    folder.mkdir()
    shutil.copy(mlp_checkpoint, folder / "old.pt")
    shutil.copy(mlp_checkpoint, folder / "new.pt")
    os.utime(folder / "old.pt", (1, 1))
    assert choice.choose_checkpoint(None, folder=folder)[0] == folder / "new.pt"
    assert choice.choose_checkpoint(None, "mlp", folder=folder)[0] == folder / "new.pt"
    with pytest.raises(CheckpointError, match="no bundled csnn weights"):
        choice.choose_checkpoint(None, "csnn", folder=folder)  # only mlp checkpoints there
    assert choice.choose_checkpoint("x.pt", folder=folder) == (Path("x.pt"), "using x.pt")
