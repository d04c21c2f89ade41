"""Bundled weights: compacted checkpoints that load as usual, chosen when nothing else is."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from snncli import pretrained
from snncli.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from snncli.errors import CheckpointError


def test_compact_halves_the_weights_and_drops_the_training_state(mlp_checkpoint, tmp_path):
    last = mlp_checkpoint.with_name("mlp.last.pt")
    ckpt = load_checkpoint(last)
    assert "training_state" in ckpt
    small = pretrained.compact(ckpt, "mlp.last.pt")
    assert "training_state" not in small and small["bundled"]["source"] == "mlp.last.pt"
    assert all(v.dtype == torch.float16 for v in small["state_dict"].values()
               if v.is_floating_point())
    path = save_checkpoint(small, tmp_path / "mlp.pt")
    assert path.stat().st_size < 0.6 * mlp_checkpoint.stat().st_size
    full, half = model_from_checkpoint(ckpt), model_from_checkpoint(load_checkpoint(path))
    assert half.fc1.weight.dtype == torch.float32  # loads into the usual model
    x = torch.rand(16, 1, 28, 28)
    torch.testing.assert_close(half(x).mean(0), full(x).mean(0), atol=2e-2, rtol=2e-2)


def test_the_newest_checkpoint_is_chosen_else_the_bundled_weights(mlp_checkpoint, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError, match="no checkpoint in .* and no bundled csnn weights"):
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
