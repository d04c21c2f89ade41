"""Each command through Typer's CliRunner: help, real runs on tiny data, and every user error."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from snncli.cli import app

from conftest import glyph

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, message, code=1):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [[], ["models"], ["train"], ["evaluate"], ["predict"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from snncli.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "snncli", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in out.stdout and "predict" in out.stdout


def test_models_lists_the_registry():
    result = run("models")
    assert result.exit_code == 0
    assert "csnn" in result.output and "mlp" in result.output
    assert "1,630,090" in result.output and "669,706" in result.output
    assert "robust" in result.output and "seed" in result.output


def test_train_recipe_is_chosen_and_stored(tiny_mnist, tmp_path):
    out = tmp_path / "r.pt"
    result = run(
        "train",
        "-m",
        "mlp",
        "--recipe",
        "robust",
        "--epochs",
        "1",
        "--data-dir",
        tiny_mnist,
        "--out",
        out,
        "--train-limit",
        "256",
        "--test-limit",
        "50",
    )
    assert result.exit_code == 0, result.output
    assert "recipe robust" in result.output and "onecycle" in result.output
    recipe = torch.load(out, weights_only=True)["recipe"]
    assert recipe["recipe"] == "robust" and recipe["augment"] == "full" and recipe["epochs"] == 1
    result = run("train", "-m", "mlp", "--recipe", "fast", "--data-dir", tiny_mnist)
    assert_user_error(result, "model 'mlp' has no recipe 'fast'; choose one of: best, finetune, "
                      "robust, seed")


def test_train_writes_best_last_metrics_and_plot(tiny_mnist, in_tmp):
    result = run(
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--data-dir",
        tiny_mnist,
        "--device",
        "cpu",
        "--eval-every",
        "5",
        "--train-limit",
        "640",
    )
    assert result.exit_code == 0, result.output
    assert "training finished" in result.output and "test accuracy" in result.output
    folder = in_tmp / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["mlp.last.pt", "mlp.metrics.jsonl", "mlp.png", "mlp.pt"]
    assert (folder / "mlp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (folder / "mlp.metrics.jsonl").read_text().splitlines()]
    # 64 of the 640 images held out for validation: 9 iterations per epoch
    assert [r["iteration"] for r in rows] == [5, 9, 10, 15, 18]
    assert all(0 <= r["test_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 for r in rows)
    ckpt = torch.load(folder / "mlp.pt", weights_only=True)
    assert ckpt["recipe"]["epochs"] == 2 and ckpt["recipe"]["batch_size"] == 64
    best = max(rows, key=lambda r: r["val_accuracy"])  # the first of the best on validation
    assert ckpt["metrics"]["val_accuracy"] == best["val_accuracy"]
    assert ckpt["metrics"]["test_accuracy"] == best["test_accuracy"]
    assert ckpt["metrics"]["val_images"] == 64 and ckpt["metrics"]["train_images"] == 576
    text = " ".join(result.output.split())
    best_line = f"{100 * best['test_accuracy']:.2f}% test, {100 * best['val_accuracy']:.2f}%"
    assert best_line + " validation" in text


def test_evaluate_json_scores_every_test_image(mlp_checkpoint, tiny_mnist):
    result = run("evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--json", "--batch-size", 64)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == 200 and 0.9 < report["accuracy"] <= 1.0
    assert len(report["per_class"]) == 10
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200
    assert confusion.trace() == report["correct"]


def test_evaluate_tables_use_the_newest_checkpoint(mlp_checkpoint, tiny_mnist, in_tmp):
    (in_tmp / "checkpoints").mkdir()
    shutil.copy(mlp_checkpoint, in_tmp / "checkpoints" / "mine.pt")
    result = run("evaluate", "--data-dir", tiny_mnist, "--limit", 50)
    assert result.exit_code == 0, result.output
    for text in ("checkpoints/mine.pt", "Accuracy per digit (%)", "Confusion matrix", "images/s"):
        assert text in result.output
    assert "50" in result.output
    metrics = torch.load(mlp_checkpoint, weights_only=True)["metrics"]
    trained = f"{metrics['test_images']:,} images, {metrics['precision']}"
    as_trained = f"{100 * metrics['test_accuracy']:.2f}% ({trained})"
    text = " ".join(result.output.split())
    assert f"as trained │ {as_trained}" in text
    epoch = metrics["evaluated_epoch"]
    assert f"checkpoint │ best on held-out validation images (epoch {epoch})" in text


def big_photo(digit: int, seed: int) -> Image.Image:
    """A digit glyph as dark ink on a large light canvas, off-centre."""
    small = Image.fromarray(255 - glyph(digit, np.random.default_rng(seed))).resize((180, 180))
    canvas = Image.new("L", (400, 300), 235)
    canvas.paste(small, (40 + 20 * seed, 30))
    return canvas


def test_predict_classifies_users_images(mlp_checkpoint, tmp_path):
    paths = []
    for d in range(10):
        paths.append(tmp_path / f"digit{d}.jpg")
        big_photo(d, d % 3).convert("RGB").save(paths[-1], quality=85)
    result = run("predict", *paths, "--checkpoint", mlp_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["path"] for p in predictions] == [str(p) for p in paths]
    right = sum(p["prediction"] == d for d, p in enumerate(predictions))
    assert right >= 8, [p["prediction"] for p in predictions]
    for p in predictions:
        assert 0 <= p["confidence"] <= 1 and len(p["scores"]) == 10
        assert p["spike_counts"] is None  # the mlp's output layer is not spiking


def test_predict_tables_show_spike_counts_of_the_csnn(tiny_mnist, tmp_path):
    out = tmp_path / "csnn.pt"
    result = run(
        "train",
        "--model",
        "csnn",
        "--steps",
        "3",
        "--batch-size",
        "100",
        "--data-dir",
        tiny_mnist,
        "--out",
        out,
        "--train-limit",
        "200",
        "--test-limit",
        "50",
        "--device",
        "cpu",
        "--epochs",
        "1",
    )
    assert result.exit_code == 0, result.output
    # 200 images, 20 held out for validation: 180 + 3% style digits (5)
    start = " ".join(result.output.split())
    assert "3% style digits" in start and "185 training images" in start, start[:300]
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for i, path in enumerate(images):
        big_photo(i + 3, i).save(path)
    result = run("predict", *images, "--checkpoint", out, "--show")
    assert result.exit_code == 0, result.output
    assert "spikes" in result.output and "Summary" in result.output and "▀" in result.output
    result = run("predict", images[0], "--checkpoint", out, "--json")
    (prediction,) = json.loads(result.stdout)
    counts = prediction["spike_counts"]
    assert len(counts) == 10 and all(isinstance(c, int) and 0 <= c <= 3 for c in counts)
    assert prediction["scores"] == counts
    recipe = torch.load(out, weights_only=True)["recipe"]
    assert recipe["recipe"] == "quick" and recipe["steps"] == 3  # the default, overridden


def test_unknown_model(in_tmp, tiny_mnist):
    result = run("train", "--model", "resnet", "--data-dir", tiny_mnist)
    assert_user_error(result, "unknown model 'resnet'; choose one of: csnn, mlp, wide")


def test_missing_data_leaves_no_files(in_tmp):
    (in_tmp / "empty").mkdir()
    result = run("train", "--model", "mlp", "--data-dir", in_tmp / "empty")
    assert_user_error(result, "train-images-idx3-ubyte[.gz]")
    assert not (in_tmp / "checkpoints").exists()


def test_non_positive_numbers(in_tmp, tiny_mnist):
    assert run("train", "--epochs", "0").exit_code == 2
    assert run("train", "--batch-size", "-5").exit_code == 2
    assert run("evaluate", "--limit", "0").exit_code == 2
    assert_user_error(
        run("train", "--lr", "-1", "--data-dir", tiny_mnist),
        "model 'csnn': lr -1.0 must be above 0", code=2,
    )


def test_bad_checkpoints(in_tmp, monkeypatch):
    from snncli import pretrained

    monkeypatch.setattr(pretrained, "BUNDLED_DIR", in_tmp / "no-bundled-weights")
    assert_user_error(run("evaluate"), "no finished checkpoint in checkpoints/")
    bogus = in_tmp / "bogus.pt"
    bogus.write_text("not a model")
    assert_user_error(run("evaluate", bogus), "not an snncli checkpoint")
    assert_user_error(run("predict", "x.png", "--checkpoint", bogus), "not an snncli checkpoint")
    assert_user_error(run("evaluate", in_tmp / "nope.pt"), "does not exist")


def test_bad_images(mlp_checkpoint, in_tmp):
    assert_user_error(run("predict", "nope.png", "--checkpoint", mlp_checkpoint), "does not exist")
    (in_tmp / "notes.png").write_text("hello")
    assert_user_error(
        run("predict", "notes.png", "--checkpoint", mlp_checkpoint), "not an image Pillow can read"
    )
    Image.new("L", (64, 64), 255).save(in_tmp / "white.png")
    assert_user_error(run("predict", "white.png", "--checkpoint", mlp_checkpoint), "blank")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_gpu(mlp_checkpoint, tiny_mnist):
    result = run("evaluate", mlp_checkpoint, "--device", "cuda", "--data-dir", tiny_mnist)
    assert_user_error(result, "no CUDA GPU is available")


def test_out_pointing_at_a_folder(in_tmp, tiny_mnist):
    (in_tmp / "dir.pt").mkdir()
    result = run("train", "--model", "mlp", "--data-dir", tiny_mnist, "--out", "dir.pt")
    assert_user_error(result, "is a folder")


def test_predict_takes_folders_globs_and_stdin(mlp_checkpoint, tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for d in (1, 4, 7):
        big_photo(d, 0).save(folder / f"{d}.png")
    (folder / "notes.txt").write_text("not an image, ignored in folders")
    result = run("predict", folder, "--checkpoint", mlp_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    assert [p["path"] for p in json.loads(result.stdout)] == [
        str(folder / f"{d}.png") for d in (1, 4, 7)
    ]
    result = run("predict", str(folder / "[14].png"), "--checkpoint", mlp_checkpoint, "--json")
    assert len(json.loads(result.stdout)) == 2
    assert_user_error(
        run("predict", str(tmp_path / "*.bmp"), "-c", mlp_checkpoint), "no file matches"
    )
    data = (folder / "7.png").read_bytes()
    result = runner.invoke(app, ["predict", "-", "-c", str(mlp_checkpoint), "--json"], input=data)
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.stdout)
    assert prediction["path"] == "<stdin>" and prediction["prediction"] == 7


def test_predict_writes_a_spike_raster(tiny_mnist, tmp_path, mlp_checkpoint):
    image = tmp_path / "three.png"
    big_photo(3, 1).save(image)
    raster = tmp_path / "raster.png"
    result = run("predict", image, "--checkpoint", mlp_checkpoint, "--raster", raster)
    assert result.exit_code == 0, result.output
    assert raster.read_bytes()[:4] == b"\x89PNG"
    assert "raster written" in result.output
    assert "probability" in result.output and "mean output" in result.output


def test_evaluate_reports_activity_sweep_and_plot(mlp_checkpoint, tiny_mnist, tmp_path):
    plot = tmp_path / "eval.png"
    args = ["evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--limit", 100]
    result = run(*args, "--steps-sweep", "1,3,6", "--plot", plot, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [row["steps"] for row in report["steps_sweep"]] == [1, 3, 6]
    assert report["steps_sweep"][-1]["accuracy"] == report["accuracy"]  # 6 = as trained
    rates = report["firing_rates"]
    assert list(rates) == ["lif1 (fc1)", "lif2 (fc2)"] and all(0 < r < 1 for r in rates.values())
    # Synaptic operations: spikes x fan-out (512 for lif1, 10 for lif2) per image.
    expected = 6 * 512 * (rates["lif1 (fc1)"] * 512 + rates["lif2 (fc2)"] * 10)
    assert report["synops_per_image"] == pytest.approx(expected, rel=1e-6)
    assert report["dense_macs_per_image"] == 784 * 512
    assert report["decays"] == {"lif1 (fc1)": 0.5, "lif2 (fc2)": 0.5}  # the seed's fixed tau
    assert plot.read_bytes()[:4] == b"\x89PNG"
    tables = run(*args, "--steps-sweep", "2,6")
    assert "Firing rate per layer" in tables.output and "Accuracy vs time steps" in tables.output
    assert_user_error(run(*args, "--steps-sweep", "5,x"), "comma-separated whole numbers")
    assert_user_error(run(*args, "--steps-sweep", "0,5"), "positive")


def test_prediction_table_names_a_close_runner_up():
    from snncli.predict import Prediction
    from snncli.ui import prediction_table

    close = Prediction(
        path="x.png",
        prediction=4,
        confidence=0.5,
        scores=[0, 0, 0, 0, 10, 0, 0, 0, 0, 8],
        shares=[0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.4],
        runner_up=9,
        runner_up_confidence=0.4,
        image=np.zeros((28, 28), np.uint8),
        raster=np.zeros((20, 10)),
    )
    assert "runner-up 9 at 40%" in str(prediction_table(close, True).title)
    clear = Prediction(**{**close.__dict__, "confidence": 0.9, "runner_up_confidence": 0.05})
    assert "runner-up" not in str(prediction_table(clear, True).title)


def test_unwritable_output_is_one_line(in_tmp, tiny_mnist):
    (in_tmp / "a_file").write_text("not a folder")
    result = run(
        "train",
        "-m",
        "mlp",
        "--data-dir",
        tiny_mnist,
        "--out",
        "a_file/model.pt",
        "--train-limit",
        "64",
        "--test-limit",
        "20",
    )
    assert_user_error(result, "cannot write checkpoint a_file/model.pt: a_file is not a folder")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["a_file"]


def test_evaluate_json_is_strict_json_when_a_digit_is_missing(mlp_checkpoint, tiny_mnist):
    result = run("evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--limit", 3, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert report["per_class"].count(None) >= 7  # 3 images cover at most 3 digits


def test_train_overrides_augmentation_and_calibrates_when_the_recipe_says(tiny_mnist, tmp_path):
    out = tmp_path / "a.pt"
    args = ["train", "-m", "mlp", "--data-dir", tiny_mnist, "--out", out, "--test-limit", "50"]
    result = run(
        *args, "--augment", "light", "--train-limit", "256", "--precision", "bf16",
        "--init", "calibrated", "--epochs", "1",
    )
    assert result.exit_code == 0, result.output
    assert "augmentation light" in result.output
    text = " ".join(result.output.split())
    assert "(bf16)" in text and "calibrated init, mean loss, surrogate 1" in text
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["recipe"]["augment"] == "light" and ckpt["recipe"]["init"] == "calibrated"
    assert ckpt["metrics"]["precision"] == "bf16"
    result = run(*args, "--augment", "heavy")
    assert result.exit_code == 2 and "heavy" in result.output


def test_models_shows_each_recipes_settings():
    result = run("models")
    assert result.exit_code == 0
    rows = {}
    for line in result.output.splitlines():
        words = line.split()
        if words:
            rows.setdefault(words[0], []).append(words[1:])
    # the csnn's recipes in two tables (five, then the rest), the mlp's and the wide's in one
    rows = {key: [values[0] + values[1], values[2], values[3]] for key, values in rows.items()
            if len(values) == 4}
    csnn = ["seed", "robust", "quick", "*", "fast", "best", "fashion", "finetune"]
    mlp = ["seed", "robust", "best", "*", "finetune"]
    wide = ["fashion", "*"]
    assert rows["setting"] == [csnn, mlp, wide]
    assert rows["dataset"] == [["mnist"] * 5 + ["fashion", "mnist"], ["mnist"] * 4,
                               ["fashion"]]
    assert rows["augment"][2] == ["mirror"]
    assert rows["styles"][0] == ["0", "0", "0.03", "0", "0", "0", "0"]
    assert rows["norm"] == [["none", "none"] + ["batch"] * 5, ["none"] * 4, ["batch"]]
    assert rows["loss"] == [["rate", "rate", "rate", "count", "rate", "count", "rate"],
                            ["mean"] * 4, ["count"]]
    assert rows["time"][1] == ["steps"] + ["6"] * 4
    assert rows["time"][0][:6] == ["steps", "100", "25", "6", "8", "16"]
    assert rows["schedule"][0] == ["constant"] + ["onecycle"] * 6  # nothing cut at 80 columns
    assert rows["ema"] == [["off", "off", "off", "off", "0.999", "off", "off"], ["off"] * 4,
                           ["0.999"]]
    assert rows["surrogate"][1] == ["1"] * 4
    assert rows["decay"] == [["fixed"] * 7, ["fixed"] * 4, ["fixed"]]


def test_train_with_a_weight_average_says_so_and_refuses_bad_decays(tiny_mnist, tmp_path):
    out = tmp_path / "ema.pt"
    args = ["train", "-m", "mlp", "--data-dir", tiny_mnist, "--out", out, "--train-limit", "128",
            "--test-limit", "20", "--steps", "2"]
    result = run(*args, "--epochs", "2", "--ema", "0.9", "--eval-epochs", "2")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # as read, whatever the terminal's width
    assert "weight average (ema 0.9)" in text
    assert "epoch 1 iteration" not in text  # evaluated after epoch 2 only
    assert "epoch 2 iteration 2: validation" in text and "test accuracy" in text
    assert "(without the weight average " in text
    assert torch.load(out, weights_only=True)["recipe"]["ema"] == 0.9
    assert_user_error(
        run(*args, "--out", tmp_path / "bad.pt", "--ema", "1.5"),
        "ema 1.5 must be in [0, 1)", code=2,
    )
    assert not (tmp_path / "bad.pt").exists()


def test_train_surrogate_option_reaches_the_model_and_refuses_non_positive(tiny_mnist, tmp_path):
    out = tmp_path / "wide.pt"
    args = ["train", "-m", "mlp", "--data-dir", tiny_mnist, "--train-limit", "128",
            "--test-limit", "20", "--steps", "2", "--epochs", "1"]
    result = run(*args, "--out", out, "--surrogate", "2.5")
    assert result.exit_code == 0, result.output
    assert "surrogate 2.5" in " ".join(result.output.split())
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["recipe"]["surrogate"] == 2.5 and ckpt["config"]["gamma"] == 2.5
    bad = run(*args, "--out", tmp_path / "bad.pt", "--surrogate", "0")
    assert_user_error(bad, "surrogate 0.0 must be above 0", code=2)
    assert not (tmp_path / "bad.pt").exists()
    assert run(*args, "--eval-epochs", "0").exit_code == 2


def test_grouped_progress_reads_report_every_iteration(tiny_mnist, tmp_path, monkeypatch):
    """On a GPU, losses are read back 25 iterations at a time; every step is still reported."""
    from snncli import train as train_module

    monkeypatch.setattr(train_module, "reads_per_sync", lambda device: 4)
    events = []
    options = train_module.TrainOptions(
        model="mlp", recipe="seed", data_dir=str(tiny_mnist), out=str(tmp_path / "g.pt"),
        overrides={"batch_size": 100}, val_size=0,
        train_limit=1000, test_limit=50, eval_every=3, plot=False,
    )
    result = train_module.train(options, on_event=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["iteration"] for e in steps] == list(range(1, 11))
    assert all(0 <= e["batch_accuracy"] <= 1 and e["loss"] > 0 for e in steps)
    assert [e["iteration"] for e in events if e["kind"] == "eval"] == [3, 6, 9, 10]
    seconds = [e["train_seconds"] for e in steps]
    assert seconds == sorted(seconds) and result.train_seconds >= seconds[-1] > 0


def test_evaluate_in_bf16_scores_like_fp32(mlp_checkpoint, tiny_mnist):
    reports = {}
    for precision in ("fp32", "bf16"):
        args = ["evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--json"]
        result = run(*args, "--precision", precision)
        assert result.exit_code == 0, result.output
        reports[precision] = json.loads(result.stdout)
    assert abs(reports["bf16"]["accuracy"] - reports["fp32"]["accuracy"]) <= 0.02
    result = run("evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--precision", "fp8")
    assert result.exit_code == 2


@pytest.mark.parametrize("native", [True, False])
def test_every_command_runs_and_names_the_automatic_precision(
    monkeypatch, mlp_checkpoint, tiny_mnist, tmp_path, native
):
    from snncli import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    chosen = "bf16" if native else "fp32"
    out = tmp_path / "m.pt"
    result = run(
        "train", "-m", "mlp", "--recipe", "seed", "--data-dir", tiny_mnist, "--out", out,
        "--train-limit", "256", "--test-limit", "50", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())  # the start line, however the terminal wraps it
    assert words.startswith(f"training on cpu ({chosen}) with recipe seed")
    assert torch.load(out, weights_only=True)["metrics"]["precision"] == chosen
    args = ["evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--device", "cpu"]
    assert json.loads(run(*args, "--json").stdout)["precision"] == chosen
    result = run(*args)
    assert result.exit_code == 0, result.output
    cells = " ".join(result.stdout.replace("│", " ").split())
    assert f" time steps 6 precision {chosen} test images " in cells
    image = tmp_path / "7.png"
    big_photo(7, 0).save(image)
    result = run("predict", image, "--checkpoint", mlp_checkpoint, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"mlp on cpu, 6 time steps, {chosen}"
    assert result.stderr == ""


def test_explicit_bf16_without_native_bf16_warns_in_one_line_and_runs(
    monkeypatch, mlp_checkpoint, tiny_mnist
):
    from snncli import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    result = run(
        "evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--device", "cpu", "--json",
        "--precision", "bf16",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["precision"] == "bf16"
    (warning,) = result.stderr.strip().splitlines()
    assert warning.startswith("warning: bf16 precision:") and "emulated" in warning


def test_batch_norm_recipe_trains_and_its_checkpoint_evaluates(tiny_mnist, tmp_path):
    out = tmp_path / "bn.pt"
    result = run(
        "train", "-m", "csnn", "--recipe", "best", "--data-dir", tiny_mnist, "--out", out,
        "--train-limit", "256", "--test-limit", "50", "--epochs", "1", "--steps", "3",
    )
    assert result.exit_code == 0, result.output
    assert "batch norm" in result.output
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["norm"] == "batch" and ckpt["recipe"]["norm"] == "batch"
    assert ckpt["state_dict"]["norm2.running_var"].shape == (64,)
    # One update per batch of 128 (training runs all steps as one chunk, even on a CPU)
    assert ckpt["state_dict"]["norm2.num_batches_tracked"] >= 2
    args = ["evaluate", out, "--data-dir", tiny_mnist, "--limit", 50, "--json"]
    report = json.loads(run(*args, "--steps-sweep", "1,3").stdout)
    assert len(report["firing_rates"]) == 4 and report["synops_per_image"] > 0
    assert report["steps_sweep"][-1]["accuracy"] == report["accuracy"]
    image = tmp_path / "one.png"  # a single image: batch norm must use its running statistics
    big_photo(5, 0).save(image)
    result = run("predict", image, "--checkpoint", out, "--json")
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.stdout)
    counts = prediction["spike_counts"]
    assert len(counts) == 10 and all(0 <= c <= 3 for c in counts)  # at most T=3 spikes each


def test_norm_and_loss_override_the_recipe(tiny_mnist, tmp_path):
    out = tmp_path / "o.pt"
    args = ["train", "--data-dir", tiny_mnist, "--out", out, "--train-limit", "128",
            "--test-limit", "20", "--epochs", "1", "--steps", "2"]
    result = run(*args, "-m", "csnn", "--recipe", "best", "--norm", "none", "--loss", "rate")
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out, weights_only=True)
    assert (ckpt["recipe"]["norm"], ckpt["recipe"]["loss"]) == ("none", "rate")
    assert ckpt["config"]["norm"] == "none" and not any("norm" in k for k in ckpt["state_dict"])
    assert_user_error(
        run(*args, "-m", "mlp", "--loss", "count"),
        "model 'mlp': loss 'count' must be one of: mean", code=2,
    )
    result = run(*args, "-m", "mlp", "--norm", "group")
    assert result.exit_code == 2 and "group" in result.output


def test_train_learns_the_decay_when_asked_and_evaluate_shows_it(tiny_mnist, tmp_path):
    """--decay learned: one decay parameter per spiking layer, trained from the config's
    value, saved, rebuilt from the checkpoint and shown by evaluate; other values are refused."""
    out = tmp_path / "learned.pt"
    args = ["train", "-m", "csnn", "--recipe", "fast", "--data-dir", tiny_mnist,
            "--train-limit", "256", "--test-limit", "20", "--steps", "2", "--epochs", "1"]
    result = run(*args, "--out", out, "--decay", "learned", "--lr", "0.05")
    assert result.exit_code == 0, result.output
    assert "learned decay" in " ".join(result.output.split())
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["recipe"]["decay"] == "learned" and ckpt["config"]["learn_decay"] is True
    logits = [ckpt["state_dict"][f"lifs.{i}.decay_logit"] for i in range(4)]
    decays = [torch.sigmoid(w).item() for w in logits]
    assert all(abs(d - 0.5) > 1e-4 for d in decays), decays  # trained away from beta = 0.5
    evaluated = run("evaluate", out, "--data-dir", tiny_mnist, "--limit", "20", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert list(json.loads(evaluated.stdout)["decays"].values()) == pytest.approx(decays)
    table = run("evaluate", out, "--data-dir", tiny_mnist, "--limit", "20")
    assert f"{decays[0]:.3f}" in table.output
    bad = run(*args, "--out", tmp_path / "bad.pt", "--decay", "sometimes")
    assert bad.exit_code == 2 and "sometimes" in bad.output
    assert not (tmp_path / "bad.pt").exists()
