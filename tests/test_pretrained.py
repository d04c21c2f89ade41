"""Bundled weights: compacted checkpoints that load as usual, chosen when nothing else is."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from snncli import pretrained
from snncli.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from snncli.data import normalise
from snncli.errors import CheckpointError
from snncli.predict import predict_files

from conftest import paper, synthetic_split


def test_compact_stores_int8_rows_and_drops_the_training_state(mlp_checkpoint, tmp_path):
    last = mlp_checkpoint.with_name("mlp.last.pt")
    ckpt = load_checkpoint(last)
    assert "training_state" in ckpt
    small = pretrained.compact(ckpt, "mlp.last.pt")
    assert "training_state" not in small and small["bundled"]["source"] == "mlp.last.pt"
    assert small["format_version"] == 2 and set(small["weight_scales"]) == {
        k for k, v in ckpt["state_dict"].items() if v.dim() >= 2
    }
    assert small["state_dict"]["fc1.weight"].dtype == torch.int8
    assert small["state_dict"]["fc1.bias"].dtype == torch.float16
    path = save_checkpoint(small, tmp_path / "mlp.pt")
    assert path.stat().st_size < 0.3 * mlp_checkpoint.stat().st_size
    loaded = load_checkpoint(path)
    scale = small["weight_scales"]["fc1.weight"][:, None]
    error = (loaded["state_dict"]["fc1.weight"] - ckpt["state_dict"]["fc1.weight"]).abs()
    assert bool((error <= scale / 2 + 1e-7).all())  # rounding to the nearest of 255 levels
    full, small_model = model_from_checkpoint(ckpt), model_from_checkpoint(loaded)
    assert small_model.fc1.weight.dtype == torch.float32  # loads into the usual model
    images, _ = synthetic_split(100, seed=5)  # digits, not noise: away from class boundaries
    x = normalise(torch.from_numpy(images), **ckpt["normalisation"])
    agree = small_model(x).mean(0).argmax(-1) == full(x).mean(0).argmax(-1)
    assert agree.float().mean() >= 0.97


def test_half_precision_compaction_stays_available(mlp_checkpoint):
    small = pretrained.compact(load_checkpoint(mlp_checkpoint), "mlp.pt", dtype="float16")
    assert "weight_scales" not in small and small["format_version"] == 1
    assert small["state_dict"]["fc1.weight"].dtype == torch.float16


def test_damaged_int8_scales_are_one_line_each(mlp_checkpoint, tmp_path):
    small = pretrained.compact(load_checkpoint(mlp_checkpoint), "mlp.pt")
    small["weight_scales"]["fc1.weight"] = small["weight_scales"]["fc1.weight"][:3]
    small["weight_scales"]["fc2.weight"] = torch.full_like(small["weight_scales"]["fc2.weight"],
                                                           float("nan"))
    path = save_checkpoint(small, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as failure:
        load_checkpoint(path)
    lines = str(failure.value).splitlines()
    assert len(lines) == 2 and all("bad.pt: weight_scales fc" in line for line in lines)


def test_compaction_refuses_to_move_mnist_accuracy(mlp_checkpoint, tiny_mnist, monkeypatch,
                                                   tmp_path, capsys):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    pretrained.main([str(mlp_checkpoint), "--data-dir", str(tiny_mnist)])
    bundled = load_checkpoint(tmp_path / "bundled" / "mlp.pt")["bundled"]
    assert abs(bundled["test_accuracy_after"] - bundled["test_accuracy_before"]) <= 5e-4
    assert "MNIST test" in capsys.readouterr().out
    monkeypatch.setattr(pretrained, "MAX_ACCURACY_CHANGE", -1.0)  # any change is too much
    (tmp_path / "bundled" / "mlp.pt").unlink()
    with pytest.raises(SystemExit, match="moves its MNIST accuracy"):
        pretrained.main([str(mlp_checkpoint), "--data-dir", str(tiny_mnist)])
    assert not (tmp_path / "bundled" / "mlp.pt").exists()


def test_compaction_records_the_user_digit_accuracy(mlp_checkpoint, tiny_mnist, monkeypatch,
                                                    tmp_path, capsys):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    digits = tmp_path / "digits"
    digits.mkdir()
    for digit in range(10):
        paper(digit).save(digits / f"{digit}_paper_{digit:04d}.png")
    pretrained.main([str(mlp_checkpoint), "--data-dir", str(tiny_mnist),
                     "--user-digits", str(digits)])
    bundled = load_checkpoint(tmp_path / "bundled" / "mlp.pt")
    _, results = predict_files(bundled, [str(digits)], torch.device("cpu"),
                               precision="fp32")
    right = sum(r.prediction == int(Path(r.path).name[0]) for r in results)
    assert bundled["bundled"]["user_digits_images"] == 10
    assert bundled["bundled"]["user_digits_accuracy"] == right / 10
    assert f"user digits {right / 10:.2%}" in capsys.readouterr().out


def test_the_newest_checkpoint_is_chosen_else_the_bundled_weights(mlp_checkpoint, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError,
                       match="no finished checkpoint in .* and no bundled csnn weights"):
        pretrained.choose_checkpoint(None, folder=folder)
    (tmp_path / "bundled").mkdir()
    shutil.copy(mlp_checkpoint, tmp_path / "bundled" / "mlp.pt")
    path, why = pretrained.choose_checkpoint(None, "mlp", folder=folder)
    assert path == tmp_path / "bundled" / "mlp.pt" and "bundled mlp weights" in why
    folder.mkdir()
    shutil.copy(mlp_checkpoint, folder / "old.pt")
    shutil.copy(mlp_checkpoint, folder / "new.pt")
    os.utime(folder / "old.pt", (1, 1))
    assert pretrained.choose_checkpoint(None, folder=folder)[0] == folder / "new.pt"
    assert pretrained.choose_checkpoint(None, "mlp", folder=folder)[0] == folder / "new.pt"
    with pytest.raises(CheckpointError, match="no bundled csnn weights"):
        pretrained.choose_checkpoint(None, "csnn", folder=folder)  # only mlp checkpoints there
    assert pretrained.choose_checkpoint("x.pt", folder=folder) == (Path("x.pt"), "using x.pt")
