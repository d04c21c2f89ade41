import pytest
import torch

from snncli.checkpoint import (
    FORMAT_VERSION,
    PLAIN_FORMAT_VERSION,
    build_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    saved_checkpoints,
)
from snncli.errors import CheckpointError
from snncli.models import create_model


def make(name="mlp", **config):
    model = create_model(name, **config)
    return model, build_checkpoint(
        name, model, recipe={"lr": 1e-3}, metrics={"test_accuracy": 0.5}, epoch=1
    )


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model, ckpt = make("csnn", steps=7)
    path = save_checkpoint(ckpt, tmp_path / "sub" / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.format_version == PLAIN_FORMAT_VERSION and loaded.model == "csnn"
    assert loaded.config["steps"] == 7 and loaded.metrics.test_accuracy == 0.5
    assert set(loaded.versions) >= {"snncli", "torch", "snntorch"}
    assert loaded.recipe == {"lr": 1e-3} and loaded.training_state is None
    rebuilt = model_from_checkpoint(loaded)
    assert rebuilt.config.steps == 7 and not rebuilt.training
    x = torch.rand(2, 1, 28, 28) * 4
    assert torch.equal(rebuilt(x), model.eval()(x))
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["m.pt"]  # no temp file left


def test_checkpoint_holds_plain_types_and_cpu_tensors(tmp_path):
    _, ckpt = make()
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # would raise on any non-plain object
    assert all(t.device.type == "cpu" for t in raw["state_dict"].values())
    assert raw["normalisation"] == {"mean": 0.1307, "std": 0.3081}


def test_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("hello")
    with pytest.raises(CheckpointError, match="not an snncli checkpoint"):
        load_checkpoint(bogus)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an snncli checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_of_another_architecture_are_refused(tmp_path):
    ckpt = make("mlp")[1].to_dict()  # a file's contents, edited by another tool
    ckpt["model"] = "csnn"
    ckpt["config"] = {"steps": 5}
    with pytest.raises(CheckpointError, match="do not match the 'csnn' architecture"):
        model_from_checkpoint(ckpt)
    ckpt = make("mlp")[1].to_dict()
    ckpt["model"] = "transformer"
    with pytest.raises(Exception, match="unknown model 'transformer'"):
        model_from_checkpoint(ckpt)


def test_newer_format_is_refused(tmp_path):
    _, ckpt = make()
    ckpt.format_version = FORMAT_VERSION + 1
    path = save_checkpoint(ckpt, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade snncli"):
        load_checkpoint(path)


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    _, ckpt = make()

    def half_write_then_fail(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("snncli.checkpoint.torch.save", half_write_then_fail)
    with pytest.raises(Exception, match="cannot write checkpoint .*No space left"):
        save_checkpoint(ckpt, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_saved_checkpoints_are_listed_newest_first(tmp_path):
    import os

    assert saved_checkpoints(tmp_path) == [] == saved_checkpoints(tmp_path / "absent")
    _, ckpt = make()
    old = save_checkpoint(ckpt, tmp_path / "a.pt")
    new = save_checkpoint(ckpt, tmp_path / "b.pt")
    (tmp_path / "folder.pt").mkdir()
    os.utime(old, (1, 1))
    assert saved_checkpoints(tmp_path) == [new, old]


def test_the_data_set_is_recorded_and_checked(tmp_path):
    _, ckpt = make()
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["dataset"] == "mnist" and load_checkpoint(path).dataset == "mnist"
    del raw["dataset"]  # a file written before the field existed: MNIST
    torch.save(raw, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").dataset == "mnist"
    for wrong in ("cifar10", torch.zeros(3), None):
        raw["dataset"] = wrong
        torch.save(raw, tmp_path / "odd.pt")
        with pytest.raises(CheckpointError) as failure:
            load_checkpoint(tmp_path / "odd.pt")
        (line,) = str(failure.value).splitlines()
        assert line.startswith(f"{tmp_path / 'odd.pt'}: dataset ") and "mnist" in line
