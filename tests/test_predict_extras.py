"""predict --sample and --figure, and the weights predict/evaluate use when given none."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from snncli import pretrained
from snncli.cli import app
from snncli.figures import figure_size

from conftest import glyph

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_sample_predicts_random_test_images_beside_their_true_digits(mlp_checkpoint, tiny_mnist):
    args = ["predict", "--sample", 12, "--seed", 3, "--data-dir", tiny_mnist, "-c", mlp_checkpoint]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert len(found) == 12 and len({f["path"] for f in found}) == 12
    assert all(f["path"].startswith("mnist-test-") and 0 <= f["label"] <= 9 for f in found)
    assert all(f["correct"] == (f["label"] == f["prediction"]) for f in found)
    assert json.loads(run(*args, "--json").stdout) == found  # the seed fixes the draw
    other = json.loads(run(*args[:4], 4, *args[5:], "--json").stdout)
    assert [f["path"] for f in other] != [f["path"] for f in found]
    right = sum(f["correct"] for f in found)
    table = " ".join(run(*args).output.split())
    assert f"12 predicted; {right} right: accuracy {100 * right / 12:.1f}%" in table
    assert "true " in table and ("right" in table or "wrong" in table)


def test_sample_needs_data_and_excludes_image_files(mlp_checkpoint, tmp_path, in_tmp):
    result = run("predict", "--sample", 3, "-c", mlp_checkpoint, "--data-dir", tmp_path)
    assert result.exit_code == 1 and "MNIST files not found" in result.stderr
    assert run("predict", "x.png", "--sample", 3, "-c", mlp_checkpoint).exit_code == 2
    assert run("predict", "-c", mlp_checkpoint).exit_code == 2  # nothing to classify
    bad = run("predict", "--sample", 10**6, "-c", mlp_checkpoint, "--data-dir", tmp_path.parent)
    assert bad.exit_code == 1


def test_figure_is_one_png_row_per_image(mlp_checkpoint, tiny_mnist, tmp_path):
    paths = []
    for digit in (3, 8):
        path = tmp_path / f"{digit}.png"
        Image.fromarray(255 - glyph(digit, np.random.default_rng(digit))).resize((90, 90)).save(
            path
        )
        paths.append(path)
    figure = tmp_path / "out" / "figure.png"
    result = run("predict", *paths, "-c", mlp_checkpoint, "--figure", figure)
    assert result.exit_code == 0, result.output
    assert f"written to {figure}" in " ".join(result.output.split())
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.size == figure_size(2) == (1200, 480)
    sampled = tmp_path / "sampled.png"
    result = run("predict", "--sample", 5, "--data-dir", tiny_mnist, "-c", mlp_checkpoint,
                 "--figure", sampled, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)
    with Image.open(sampled) as image:
        assert image.size == figure_size(5)
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    refused = run("predict", *paths, "-c", mlp_checkpoint, "--figure", folder)
    assert refused.exit_code == 1 and "folder" in refused.stderr


@pytest.fixture()
def bundled(mlp_checkpoint, tmp_path, monkeypatch):
    """A bundled-weights folder holding a compacted mlp."""
    from snncli.checkpoint import load_checkpoint, save_checkpoint

    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    ckpt = load_checkpoint(mlp_checkpoint).compacted("mlp.pt")
    save_checkpoint(ckpt, tmp_path / "bundled" / "mlp.pt")
    return tmp_path / "bundled"


def test_without_a_checkpoint_the_bundled_weights_are_used_and_named(bundled, tiny_mnist, in_tmp):
    image = in_tmp / "seven.png"
    Image.fromarray(glyph(7, np.random.default_rng(0))).save(image)
    result = run("predict", image, "--model", "mlp")
    assert result.exit_code == 0, result.output
    assert "using the bundled mlp weights" in result.output
    result = run("evaluate", "--model", "mlp", "--data-dir", tiny_mnist, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["accuracy"] > 0.9
    assert "using the bundled mlp weights" in result.stderr  # stdout is the JSON
    missing = run("predict", image)  # the default model, csnn, is not bundled here
    assert missing.exit_code == 1 and "no bundled csnn weights" in missing.stderr
    (in_tmp / "checkpoints").mkdir()
    shutil.copy(bundled / "mlp.pt", in_tmp / "checkpoints" / "mine.pt")
    result = run("predict", image)
    assert result.exit_code == 0 and "checkpoints/mine.pt, the newest" in result.output


def test_models_shows_the_bundled_weights_and_their_figures(bundled):
    from snncli.checkpoint import load_checkpoint, save_checkpoint

    accuracy = load_checkpoint(bundled / "mlp.pt").metrics.test_accuracy
    text = " ".join(run("models").output.split())
    assert "Bundled weights" in text and f"mlp │ seed │ 6 │ {100 * accuracy:.2f}% │ - │" in text
    ckpt = load_checkpoint(bundled / "mlp.pt")
    ckpt.bundled.test_accuracy_after, ckpt.bundled.user_digits_accuracy = 0.98765, 0.9525
    size = save_checkpoint(ckpt, bundled / "mlp.pt").stat().st_size / 1e6
    text = " ".join(run("models").output.split())
    assert f"mlp │ seed │ 6 │ 98.77% │ 95.25% │ {size:.1f} MB" in text


def test_a_faint_drawing_is_read_and_said_to_be_low_contrast(mlp_checkpoint, tmp_path):
    """A 1-pixel pencil line 14 grey levels below white paper is read, not refused as blank,
    and both the JSON and the tables say that it was low in contrast; a clear digit is not."""
    line = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(line)
    draw.line([(14, 4), (14, 24)], fill=255, width=1)
    draw.line([(10, 8), (14, 4)], fill=255, width=1)
    faint = 250 - 14 * (np.asarray(line, dtype=np.float64) / 255)
    Image.fromarray(faint.astype(np.uint8)).save(tmp_path / "faint.png")
    Image.fromarray(255 - glyph(3, np.random.default_rng(0))).save(tmp_path / "clear.png")
    images = [tmp_path / "faint.png", tmp_path / "clear.png"]
    result = run("predict", *images, "-c", mlp_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    faint_one, clear_one = json.loads(result.stdout)
    assert faint_one["low_contrast"] is True and clear_one["low_contrast"] is False
    table = " ".join(run("predict", *images, "-c", mlp_checkpoint).output.split())
    assert table.count("(low contrast)") == 2  # the faint image's own table and its summary row
    alone = " ".join(run("predict", images[1], "-c", mlp_checkpoint).output.split())
    assert "low contrast" not in alone


def test_predict_in_its_own_process_ends_at_once_with_all_its_output(mlp_checkpoint, tmp_path):
    """`snn predict` skips Python's finalization (torch's teardown) when it ends: its JSON,
    its error lines and its exit code still come out whole, through pipes."""
    import subprocess
    import sys

    good = tmp_path / "good.png"
    Image.fromarray(255 - glyph(3, np.random.default_rng(0))).save(good)
    command = [sys.executable, "-m", "snncli", "predict", "-c", str(mlp_checkpoint), "--json"]
    done = subprocess.run([*command, str(good), str(tmp_path / "missing.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    found = json.loads(done.stdout)
    assert found[0]["path"] == str(good) and "prediction" in found[0]
    assert found[1]["error"].endswith("does not exist")
    assert done.stderr.count("error:") == 1
    done = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 1


def test_many_images_are_read_by_several_processes_with_the_same_results(
    mlp_checkpoint, tmp_path, monkeypatch
):
    """From PARALLEL_FROM inputs on, processes read the images: the predictions, failures and
    their order are those of reading them one by one here."""
    from snncli import predict
    from snncli.checkpoint import load_checkpoint
    from snncli.runtime import resolve_device

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(predict.PARALLEL_FROM + 6):
        digit = glyph(i % 10, np.random.default_rng(i))
        Image.fromarray(255 - digit).resize((84, 84)).save(folder / f"{i:03d}.png")
    (folder / "030.png").write_bytes(b"not an image")
    Image.new("L", (60, 60), 255).save(folder / "031.png")  # blank
    pool = predict.image_readers(predict.PARALLEL_FROM)
    if pool is None:
        pytest.skip("one CPU core: images are read in this process")
    pool.shutdown()
    ckpt, cpu = load_checkpoint(mlp_checkpoint), resolve_device("cpu")

    def outcomes():
        _, results = predict.predict_files(ckpt, [str(folder)], cpu)
        return [(r.path, r.error) if isinstance(r, predict.Failure)
                else (r.path, r.prediction, r.scores, r.low_contrast) for r in results]

    together = outcomes()
    monkeypatch.setattr(predict, "PARALLEL_FROM", 10**9)
    assert together == outcomes()
    assert "not an image" in together[30][1] and "blank" in together[31][1]
