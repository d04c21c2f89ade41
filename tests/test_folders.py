"""Labelled image folders (`--data DIR`): `snn evaluate --data`, and fine-tuning with
`snn train --data DIR --init-from ...`: bad folders in one line, unreadable files skipped
with one warning, the tables' figures, the fine-tuned checkpoint's record, exact resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from snncli import finetune
from snncli.cli import app
from snncli.errors import DataError, SnnError
from snncli.folders import read_labelled_folder
from snncli.train import TrainingInterrupted, TrainOptions, train

from conftest import glyph

runner = CliRunner()
DIGITS = [str(d) for d in range(10)]


def make_folder(root: Path, counts: dict[str, int], seed: int = 5, digit_of=None) -> Path:
    """A labelled folder of font-rendered digits: `counts[name]` PNGs in `root/name/` (half
    of them one level deeper, to be found recursively), each of the digit `digit_of(name)`."""
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        for i in range(count):
            folder = root / name / ("more" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            digit = int(digit_of(name) if digit_of else name)
            Image.fromarray(glyph(digit, rng)).save(folder / f"{name}_{i:03d}.png")
    return root


def one_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def bad_folders(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each way a folder cannot be used, and what its one line says."""
    (tmp_path / "a_file").write_text("x")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(glyph(3, np.random.default_rng(0))).save(flat / "3.png")
    no_images = tmp_path / "no_images"
    (no_images / "3").mkdir(parents=True)
    (no_images / "7").mkdir()
    (no_images / "7" / "notes.txt").write_text("not an image")
    empty_class = make_folder(tmp_path / "empty_class", {"3": 2, "7": 2})
    (empty_class / "5").mkdir()
    one_class = make_folder(tmp_path / "one_class", {"7": 3})
    unknown = make_folder(tmp_path / "unknown", {"3": 2, "7": 2, "cat": 2}, digit_of=lambda n: 1)
    unreadable = tmp_path / "unreadable"
    for name in ("3", "7"):
        (unreadable / name).mkdir(parents=True)
        (unreadable / name / "broken.png").write_bytes(b"not a png")
    return {
        "missing": (tmp_path / "nowhere", "does not exist"),
        "file": (tmp_path / "a_file", "is a file, not a folder"),
        "flat": (flat, "holds no class folders"),
        "no images": (no_images, "holds no images in its class folders"),
        "empty class": (empty_class, "class folder 5 holds no images"),
        "one class": (one_class, "holds one class folder (7)"),
        "unknown": (unknown, "class folder cat is not a class of the checkpoint (its classes: "
                    "0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
        "unreadable": (unreadable, "none of its 2 images could be read"),
    }


def test_each_bad_folder_is_one_line_in_evaluate_and_train(tmp_path, mlp_checkpoint, tiny_mnist):
    for what, (folder, message) in bad_folders(tmp_path).items():
        result = runner.invoke(app, ["evaluate", str(mlp_checkpoint), "--data", str(folder),
                                     "--device", "cpu"])
        assert message in one_error(result), what
        result = runner.invoke(app, ["train", "--data", str(folder), "--init-from",
                                     str(mlp_checkpoint), "--data-dir", str(tiny_mnist),
                                     "--out", str(tmp_path / "ft" / "m.pt"), "--device", "cpu"])
        assert message in one_error(result), what
        assert not (tmp_path / "ft" / "m.pt").exists()


def test_unreadable_files_are_skipped_with_one_warning(tmp_path, mlp_checkpoint):
    folder = make_folder(tmp_path / "digits", {"1": 3, "4": 3})
    for i in range(5):
        (folder / "4" / f"bad{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "1" / ".hidden.png").write_bytes(b"hidden files are passed over")
    (folder / "1" / "notes.txt").write_text("other files too")
    result = runner.invoke(app, ["evaluate", str(mlp_checkpoint), "--data", str(folder),
                                 "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert "5 of 11 images could not be read and are skipped" in warning
    assert "bad0.jpg" in warning and "bad2.jpg" in warning and "and 2 more" in warning
    report = json.loads(result.stdout)
    assert report["total"] == 6 and report["files"] == 11 and len(report["skipped"]) == 5


def test_evaluate_data_figures_match_a_count_by_predict(tmp_path, mlp_checkpoint):
    """Three 8s filed under 3/ are misread (or not) as `snn predict` reads them: the
    accuracy, per-class figures, confusion and misread list agree with predict's readings."""
    from snncli.checkpoint import load_checkpoint
    from snncli.predict import predict_files

    folder = make_folder(tmp_path / "d", {"3": 6, "8": 5})
    rng = np.random.default_rng(11)
    for i in range(3):
        Image.fromarray(glyph(8, rng)).save(folder / "3" / f"really_8_{i}.png")
    result = runner.invoke(app, ["evaluate", str(mlp_checkpoint), "--data", str(folder),
                                 "--device", "cpu", "--precision", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    files = sorted((folder / "3").rglob("*.png")) + sorted((folder / "8").rglob("*.png"))
    truth = [3] * 9 + [8] * 5
    _, read = predict_files(load_checkpoint(mlp_checkpoint), [str(f) for f in files],
                            torch.device("cpu"), precision="fp32")
    read = [p.prediction for p in read]
    right = sum(r == t for r, t in zip(read, truth, strict=True))
    assert (report["correct"], report["total"]) == (right, 14)
    assert report["accuracy"] == pytest.approx(right / 14)
    assert report["per_class"][3] == pytest.approx(sum(r == 3 for r in read[:9]) / 9)
    assert report["per_class"][0] is None
    assert report["confusion"][3][8] == sum(r == 8 for r in read[:9])
    wrong = [(str(f), str(t), str(r)) for f, t, r in zip(files, truth, read, strict=True)
             if r != t]
    assert [(m["path"], m["true"], m["read_as"]) for m in report["misread"]] == wrong
    assert any("really_8" in m["path"] for m in report["misread"])  # the glyphs read as 8
    assert report["classes_found"] == ["3", "8"]
    assert 0 < report["true_class_confidence"] <= 1

    tables = runner.invoke(app, ["evaluate", str(mlp_checkpoint), "--data", str(folder),
                                 "--device", "cpu", "--precision", "fp32"])
    assert tables.exit_code == 0, tables.output
    text = " ".join(tables.stdout.split())
    assert f"{100 * right / 14:.2f}% ({right} right)" in text
    assert f"Misread files ({len(wrong)})" in text and "really_8_0.png" in text


def finetune_options(folder, tiny_mnist, out, init, **extra) -> TrainOptions:
    return TrainOptions(
        model=None, init_from=str(init), data=str(folder), data_dir=str(tiny_mnist),
        out=str(out), train_limit=300, test_limit=40, val_size=20, eval_every=2, plot=False,
        device="cpu", overrides={"batch_size": 32, "epochs": 2}, **extra,
    )


@pytest.fixture()
def small_epochs(monkeypatch):
    monkeypatch.setattr(finetune, "FOLDER_EPOCH", 48)  # 48 folder + 48 MNIST images an epoch


def test_fine_tuning_writes_a_checkpoint_that_records_its_origin(
        tmp_path, mlp_checkpoint, tiny_mnist, small_epochs):
    folder = make_folder(tmp_path / "mine", {"2": 5, "5": 5, "9": 1})
    out = tmp_path / "ft" / "m.pt"
    result = train(finetune_options(folder, tiny_mnist, out, mlp_checkpoint))
    assert "data_val_accuracy" in result.best
    from snncli.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out)
    assert ckpt.model == "mlp" and ckpt.recipe["recipe"] == "finetune"
    assert ckpt.class_names == tuple(DIGITS)
    record = ckpt.fine_tuned
    # 1 of 5 held out of 2/ and of 5/ (a fifth), none of 9/'s single image
    assert record == {"init_from": str(mlp_checkpoint), "data": str(folder), "images": 11,
                      "train_images": 9, "held_out": 2, "copies": 6, "mnist_images": 54,
                      "skipped": 0, "classes": ["2", "5", "9"],
                      "fingerprint": record["fingerprint"]}
    assert record["fingerprint"].startswith("11:")
    assert ckpt.metrics.others["train_images"] == 9 * 6 + 54
    assert 0 <= ckpt.metrics.others["data_val_accuracy"] <= 1
    # it starts from the init weights: before any update, the same outputs
    state = torch.load(tmp_path / "ft" / "m.last.pt", weights_only=True)["training_state"]
    assert state["options"]["data"] == str(folder) and state["options"]["classes"] == DIGITS


def test_the_best_checkpoint_is_chosen_on_the_mean_of_folder_and_mnist_validation(
        tmp_path, mlp_checkpoint, tiny_mnist, small_epochs, monkeypatch):
    from snncli import train as train_module

    scores = iter([0.5, 1.0, 0.9, 0.7] * 10)  # (folder, MNIST) per evaluation
    monkeypatch.setattr(train_module.Run, "score", lambda self, model, split: next(scores))
    folder = make_folder(tmp_path / "mine", {"2": 5, "5": 5})
    result = train(finetune_options(folder, tiny_mnist, tmp_path / "m.pt", mlp_checkpoint))
    first = result.rows[0]
    assert (first["data_val_accuracy"], first["val_accuracy"]) == (0.5, pytest.approx(0.75))


@pytest.mark.parametrize("model_init", ["mlp", "bundled-csnn"])
def test_interrupted_and_resumed_fine_tuning_equals_an_uninterrupted_one(
        model_init, tmp_path, mlp_checkpoint, tiny_mnist, small_epochs):
    init = mlp_checkpoint if model_init == "mlp" else "bundled"
    folder = make_folder(tmp_path / "mine", {"1": 6, "7": 6})
    extra = {} if model_init == "mlp" else {"test_limit": 8, "val_size": 8}

    def opts(where):
        o = finetune_options(folder, tiny_mnist, tmp_path / where / "m.pt", init)
        for k, v in extra.items():
            setattr(o, k, v)
        if model_init != "mlp":
            o.overrides = {"batch_size": 48, "epochs": 2}
        return o

    whole = train(opts("whole"))

    def interrupt(event):
        if event["kind"] == "step" and event["iteration"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as stopped:
        train(opts("cut"), interrupt)
    assert stopped.value.exit_code == 143
    last = tmp_path / "cut" / "m.last.pt"
    resumed = train(TrainOptions(resume=str(last), plot=False))
    for name in ("m.pt", "m.last.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "cut" / name, weights_only=True)
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)
        assert a["fine_tuned"] == b["fine_tuned"]
    strip = [{k: v for k, v in r.items() if k != "train_seconds"} for r in whole.rows]
    assert [{k: v for k, v in r.items() if k != "train_seconds"} for r in resumed.rows] == strip


def test_a_changed_folder_is_refused_at_resume_in_one_line(
        tmp_path, mlp_checkpoint, tiny_mnist, small_epochs):
    folder = make_folder(tmp_path / "mine", {"1": 6, "7": 6})
    train(finetune_options(folder, tiny_mnist, tmp_path / "m.pt", mlp_checkpoint))
    last = str(tmp_path / "m.last.pt")
    result = runner.invoke(app, ["train", "--resume", last, "--epochs", "3"])
    assert result.exit_code == 0, result.output  # unchanged: it continues
    (folder / "7" / "7_000.png").rename(folder / "7" / "7_100.png")
    assert "renamed, moved or rewritten" in one_error(
        runner.invoke(app, ["train", "--resume", last, "--epochs", "4"]))
    (folder / "1" / "1_000.png").unlink()
    (folder / "7" / "7_100.png").rename(folder / "7" / "7_000.png")
    assert "it held 12 image files, now 11" in one_error(
        runner.invoke(app, ["train", "--resume", last, "--epochs", "4"]))
    result = runner.invoke(app, ["train", "--resume", last, "--data", str(folder)])
    assert "--data would change the saved run" in one_error(result, 2)


def test_init_from_mistakes_are_one_line(tmp_path, mlp_checkpoint, tiny_mnist):
    folder = make_folder(tmp_path / "mine", {"1": 2, "7": 2})
    base = ["train", "--data", str(folder), "--data-dir", str(tiny_mnist), "--device", "cpu",
            "--out", str(tmp_path / "m.pt")]
    cases = [
        (["--init-from", str(tmp_path / "none.pt")], 1, "does not exist"),
        (["--init-from", str(mlp_checkpoint), "--model", "csnn"], 2,
         "--model csnn does not fit --init-from"),
        (["--init-from", str(mlp_checkpoint), "--steps", "9"], 2,
         "does not fit the run's model: its steps 6 (the recipe's 9)"),
        (["--init-from", "bundled", "--model", "csnn", "--norm", "none"], 2,
         "its norm 'batch' (the recipe's 'none')"),
        ([], 2, "--data fine-tunes a trained model: give --init-from"),
    ]
    for extra, code, message in cases:
        assert message in one_error(runner.invoke(app, base + extra), code), extra
    plain = ["train", "--recipe", "finetune", "--data-dir", str(tiny_mnist)]
    assert "starts from trained weights" in one_error(runner.invoke(app, plain), 2)
    assert not list(tmp_path.glob("m.*"))


def test_init_from_without_data_continues_training_on_mnist(tmp_path, mlp_checkpoint, tiny_mnist):
    out = tmp_path / "more.pt"
    result = runner.invoke(app, ["train", "--init-from", str(mlp_checkpoint), "--data-dir",
                                 str(tiny_mnist), "--train-limit", "200", "--test-limit", "40",
                                 "--epochs", "1", "--out", str(out), "--device", "cpu",
                                 "--dropout", "0.2"])
    assert result.exit_code == 0, result.output
    from snncli.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out)
    assert ckpt.model == "mlp" and ckpt.fine_tuned == {"init_from": str(mlp_checkpoint)}
    # dropout changes training, not the model: the init checkpoint's 0 fits the run's 0.2
    assert ckpt.config["dropout"] == 0.2
    # started from the weights, not from scratch: already as good as the init checkpoint
    assert ckpt.metrics.test_accuracy > 0.9


def test_a_fine_tuned_checkpoint_with_a_bad_record_is_refused(tmp_path, mlp_checkpoint):
    from snncli.checkpoint import load_checkpoint

    raw = torch.load(mlp_checkpoint, weights_only=True)
    for record, message in [({"data": "x"}, "must be a mapping naming init_from"),
                            ({"init_from": "bundled", "images": -1}, "fine_tuned images"),
                            ({"init_from": "bundled", "colour": 1}, "unknown field 'colour'")]:
        torch.save(raw | {"fine_tuned": record}, tmp_path / "x.pt")
        with pytest.raises(SnnError, match=message):
            load_checkpoint(tmp_path / "x.pt")


def test_a_saved_fine_tuning_state_is_checked(tmp_path, mlp_checkpoint, tiny_mnist, small_epochs):
    folder = make_folder(tmp_path / "mine", {"1": 3, "7": 3})
    train(finetune_options(folder, tiny_mnist, tmp_path / "m.pt", mlp_checkpoint))
    raw = torch.load(tmp_path / "m.last.pt", weights_only=True)
    for change, message in [({"classes": ["1", "1"]}, "options classes"),
                            ({"data_fingerprint": None}, "must hold init_from and data_fing"),
                            ({"classes": None}, "classes must name each output")]:
        state = raw["training_state"] | {"options": raw["training_state"]["options"] | change}
        torch.save(raw | {"training_state": state}, tmp_path / "x.last.pt")
        with pytest.raises(SnnError, match=message):
            train(TrainOptions(resume=str(tmp_path / "x.last.pt"), plot=False))


def test_reading_a_folder_keeps_class_order_and_a_subset_of_classes(tmp_path):
    folder = make_folder(tmp_path / "d", {"7": 2, "3": 3})
    read = read_labelled_folder(folder, DIGITS)
    assert read.found == ["3", "7"] and read.split.labels.tolist() == [3, 3, 3, 7, 7]
    assert read.split.images.shape == (5, 28, 28) and read.split.images.dtype == torch.uint8
    assert [Path(p).name for p in read.paths] == ["3_000.png", "3_002.png", "3_001.png",
                                                  "7_000.png", "7_001.png"]
    assert len(read_labelled_folder(folder, DIGITS, limit=4)) == 4
    with pytest.raises(DataError, match="class folder 3 is not a class"):
        read_labelled_folder(folder, ["7", "8"])
