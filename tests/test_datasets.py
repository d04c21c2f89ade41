"""Fashion-MNIST beside MNIST: the data-set setting, its files, class names in checkpoints,
evaluate's refusal across data sets, predictions by class name, users' product photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from snncli import data
from snncli.checkpoint import load_checkpoint
from snncli.choice import choose_checkpoint
from snncli.cli import app
from snncli.data import load_split
from snncli.datasets import DATASETS, FASHION_CLASSES, DatasetError, get_dataset
from snncli.errors import CheckpointError, DataError, ImageError
from snncli.products import prepare_product

from conftest import assert_failed, fake_downloader, make_mnist_dir, write_idx

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, tiny_mnist):
    """An mlp trained on a Fashion-MNIST-format folder (the synthetic glyphs stand in for its
    products), written where `snn train` writes it by default."""
    folder = tmp_path_factory.mktemp("fashion_run")
    runs = folder / "checkpoints"
    result = run("train", "-m", "mlp", "--dataset", "fashion-mnist", "--data-dir", tiny_mnist,
                 "--epochs", "3", "--batch-size", "32", "--device", "cpu",
                 "--out", runs / "mlp-fashion-mnist.pt")
    assert result.exit_code == 0, result.output
    return runs / "mlp-fashion-mnist.pt"


def test_unknown_data_set_names_the_known_ones():
    with pytest.raises(DatasetError) as info:
        get_dataset("cifar10")
    assert str(info.value) == "unknown data set 'cifar10'; known: mnist, fashion-mnist"
    assert get_dataset("fashion-mnist").classes[7] == "Sneaker" and len(DATASETS) == 2
    result = run("train", "--dataset", "cifar10")
    assert result.exit_code == 2 and "cifar10" in result.output


def test_a_fashion_run_records_its_data_set_and_class_names(fashion_run):
    ckpt = load_checkpoint(fashion_run)
    assert ckpt.dataset == "fashion-mnist" and ckpt.recipe["dataset"] == "fashion-mnist"
    assert ckpt.class_names == FASHION_CLASSES and ckpt.classes == list(FASHION_CLASSES)
    assert ckpt.preprocessing["layout"].startswith("product's longer side scaled to 28")
    assert ckpt.metrics.test_accuracy > 0.5  # it learned the ten (synthetic) classes


def test_its_default_file_does_not_replace_the_mnist_run(in_tmp, tiny_mnist):
    args = ["train", "-m", "mlp", "--data-dir", tiny_mnist, "--epochs", "1",
            "--train-limit", "300", "--test-limit", "50", "--device", "cpu"]
    assert_ok_exit(run(*args))
    assert_ok_exit(run(*args, "--dataset", "fashion-mnist"))
    mnist, fashion = load_checkpoint("checkpoints/mlp.pt"), load_checkpoint(
        "checkpoints/mlp-fashion-mnist.pt")
    assert (mnist.dataset, fashion.dataset) == ("mnist", "fashion-mnist")
    assert mnist.class_names == tuple("0123456789")


def assert_ok_exit(result) -> None:
    assert result.exit_code == 0, result.output


def test_the_csnn_trains_fashion_with_its_fashion_recipe_by_default(in_tmp, tiny_mnist):
    result = run("train", "--dataset", "fashion-mnist", "--data-dir", tiny_mnist, "--epochs",
                 "1", "--steps", "2", "--train-limit", "256", "--test-limit", "50",
                 "--val-size", "0", "--device", "cpu")
    assert_ok_exit(result)
    ckpt = load_checkpoint("checkpoints/csnn-fashion-mnist.pt")
    assert ckpt.recipe_name == "fashion" and ckpt.recipe["styles"] == 0
    assert "Fashion-MNIST, recipe fashion" in result.output


def test_style_digits_are_refused_for_fashion_in_one_line(in_tmp, tiny_mnist):
    result = run("train", "--dataset", "fashion-mnist", "--recipe", "quick", "--data-dir",
                 tiny_mnist, "--device", "cpu")
    assert_failed(result, "styles 0.03 adds handwritten digits, which Fashion-MNIST does not "
                  "hold: set styles 0", code=2)
    assert not Path("checkpoints").exists()


@pytest.mark.parametrize("model, augment", [("wide", None), ("csnn", "mirror"),
                                            ("csnn", "clothing")])
def test_mirrored_images_are_refused_for_digits_in_one_line(in_tmp, tiny_mnist, model,
                                                           augment):
    """wide's own recipe mirrors; a level that mirrors is refused for any model on digits."""
    extra = ("--augment", augment) if augment else ()
    result = run("train", "--model", model, "--dataset", "mnist", "--data-dir", tiny_mnist,
                 "--device", "cpu", *extra)
    level = augment or "mirror"
    assert_failed(result, f"augment {level} flips images left-right, which turns digits into "
                  "other shapes: use none, light or full for MNIST", code=2)
    assert not Path("checkpoints").exists()


def test_the_wide_model_trains_fashion_with_its_recipe_evaluates_and_resumes(in_tmp,
                                                                              tiny_mnist):
    """The wide spiking CNN, registered like any model, through the CLI: Fashion-MNIST picks
    its `fashion` recipe; the checkpoint evaluates by class name; a run of one epoch extended
    by `--resume --epochs 2` ends with the weights (and weight average) of a 2-epoch run."""
    args = ("train", "--model", "wide", "--dataset", "fashion-mnist", "--data-dir", tiny_mnist,
            "--steps", "2", "--batch-size", "32", "--train-limit", "128", "--test-limit", "40",
            "--val-size", "0", "--device", "cpu", "--schedule", "constant")
    result = run(*args, "--epochs", "2", "--out", "straight.pt")
    assert_ok_exit(result)
    assert "recipe fashion" in result.output and "augmentation mirror" in result.output
    ckpt = load_checkpoint("straight.pt")
    assert ckpt.model == "wide" and ckpt.recipe_name == "fashion"
    assert ckpt.dataset == "fashion-mnist" and ckpt.config["conv3_channels"] == 128
    assert_ok_exit(run(*args, "--epochs", "1", "--out", "resumed.pt"))
    assert_ok_exit(run("train", "--resume", "resumed.last.pt", "--epochs", "2",
                       "--data-dir", tiny_mnist))
    straight = load_checkpoint("straight.last.pt").state_dict
    resumed = load_checkpoint("resumed.last.pt").state_dict
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    result = run("evaluate", "straight.pt", "--data-dir", tiny_mnist)
    assert_ok_exit(result)
    assert "Ankle boot" in result.output


def test_evaluate_scores_a_fashion_checkpoint_by_class_name(fashion_run, tiny_mnist):
    result = run("evaluate", fashion_run, "--data-dir", tiny_mnist, "--dataset",
                 "fashion-mnist")
    assert_ok_exit(result)
    assert "Accuracy per class (%)" in result.output and "Ankle boot" in result.output
    assert "9 Ankle boot" in result.output  # the confusion matrix's rows


def test_scoring_a_fashion_checkpoint_on_mnist_is_refused_in_one_line(fashion_run, tiny_mnist):
    result = run("evaluate", fashion_run, "--dataset", "mnist", "--data-dir", tiny_mnist)
    assert_failed(result, f"{fashion_run} was trained on Fashion-MNIST, so it cannot be "
                  "scored on MNIST", code=2)
    result = run("predict", "--sample", "3", "-c", fashion_run, "--dataset", "mnist",
                 "--data-dir", tiny_mnist)
    assert_failed(result, "was trained on Fashion-MNIST", code=2)


def test_predictions_name_fashion_classes(fashion_run, tiny_mnist):
    result = run("predict", "--sample", "5", "-c", fashion_run, "--data-dir", tiny_mnist,
                 "--json")
    assert_ok_exit(result)
    rows = json.loads(result.stdout)
    assert [r["path"].startswith("fashion-mnist-test-") for r in rows] == [True] * 5
    assert all(r["class"] == FASHION_CLASSES[r["prediction"]] for r in rows)
    table = run("predict", "--sample", "1", "-c", fashion_run, "--data-dir", tiny_mnist)
    assert "Sneaker" in table.output and "Ankle boot" in table.output  # the class column


def test_checkpoint_choice_keeps_to_the_data_set_asked_for(tmp_path, fashion_run):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    with pytest.raises(CheckpointError) as info:
        choose_checkpoint(None, folder=folder, dataset="fashion-mnist")
    assert "no finished Fashion-MNIST checkpoint in" in str(info.value)
    with pytest.raises(CheckpointError):
        choose_checkpoint("bundled", dataset="fashion-mnist")
    shutil.copy(fashion_run, folder / "f.pt")
    chosen, why = choose_checkpoint(None, folder=folder, dataset="fashion-mnist")
    assert chosen == folder / "f.pt" and "(Fashion-MNIST)" in why
    chosen, why = choose_checkpoint(None, folder=folder, dataset="mnist")
    assert chosen.name == "csnn.pt" and "bundled" in why  # the Fashion run is passed over
    assert choose_checkpoint(None, folder=folder)[0] == folder / "f.pt"  # any data set


def test_a_resumed_run_keeps_its_data_set(in_tmp, tiny_mnist):
    args = ["train", "-m", "mlp", "--dataset", "fashion-mnist", "--data-dir", tiny_mnist,
            "--epochs", "1", "--train-limit", "200", "--test-limit", "20", "--device", "cpu"]
    assert_ok_exit(run(*args))
    result = run("train", "--resume", "checkpoints/mlp-fashion-mnist.last.pt", "--dataset",
                 "mnist")
    assert_failed(result, "--dataset would change the saved run", code=2)


def full_size_set(folder: Path, mean: float) -> Path:
    """A folder of 10,000 test images whose mean pixel is `mean` (0-1)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = (rng.random((10000, 28, 28)) < mean).astype(np.uint8) * 255
    write_idx(folder / "t10k-images-idx3-ubyte", images)
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(10000) % 10).astype(np.uint8))
    return folder


def test_one_data_sets_files_are_not_read_as_the_others(tmp_path):
    mnist_like = full_size_set(tmp_path / "m", 0.1325)
    with pytest.raises(DataError) as info:
        load_split("test", mnist_like, dataset="fashion-mnist")
    assert str(info.value) == (f"{mnist_like / 't10k-images-idx3-ubyte.gz'} holds MNIST images, "
                               "not Fashion-MNIST: point --data-dir at the Fashion-MNIST files")
    assert len(load_split("test", mnist_like)) == 10000
    fashion_like = full_size_set(tmp_path / "f", 0.2868)
    with pytest.raises(DataError, match="holds Fashion-MNIST images, not MNIST"):
        load_split("test", fashion_like)
    assert len(load_split("test", fashion_like, dataset="fashion-mnist")) == 10000


def test_fashion_downloads_through_torchvisions_fashion_class(in_tmp, monkeypatch):
    import torchvision.datasets

    source = make_mnist_dir(in_tmp / "source", n_train=20, n_test=10)
    monkeypatch.setattr(data, "_reachable", lambda urls: None)
    fetched = []
    fake = fake_downloader("FashionMNIST", source, fetched)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake)
    monkeypatch.setenv("SNN_DATA_DIR", str(in_tmp / "not-for-fashion"))  # MNIST's variable
    assert len(load_split("test", dataset="fashion-mnist")) == 10 and fetched == [True, False]
    assert (in_tmp / "cache" / "fashion-mnist" / "FashionMNIST" / "raw").is_dir()


def photo(shape: str, size=(300, 200), background=235, ink=40) -> Image.Image:
    image = Image.new("RGB", size, (background,) * 3)
    draw = ImageDraw.Draw(image)
    if shape == "trouser":  # two long legs: taller than wide
        draw.rectangle((110, 20, 145, 180), fill=(ink,) * 3)
        draw.rectangle((155, 20, 190, 180), fill=(ink,) * 3)
    elif shape == "bag":  # a wide box with a handle
        draw.rectangle((60, 80, 240, 170), fill=(ink,) * 3)
        draw.arc((110, 30, 190, 110), 180, 360, fill=(ink,) * 3, width=8)
    return image


def test_a_product_photo_is_made_like_fashion_mnist():
    trouser = prepare_product(photo("trouser")).image
    assert trouser.shape == (28, 28) and trouser.dtype == np.uint8
    rows = np.flatnonzero((trouser > 60).any(1))
    cols = np.flatnonzero((trouser > 60).any(0))
    assert rows[-1] - rows[0] + 1 >= 27  # its longer side fills the frame
    assert 8 <= cols[-1] - cols[0] + 1 <= 14  # aspect kept
    assert trouser[[0, -1]].max() < 60 or trouser[:, [0, -1]].max() < 60  # black around it
    bag = prepare_product(photo("bag")).image
    assert np.flatnonzero((bag > 60).any(0)).size >= 27  # wider than tall: width fills
    dark_room = prepare_product(photo("trouser", background=20, ink=220)).image
    assert np.abs(dark_room.astype(int) - trouser.astype(int)).mean() < 20  # either polarity
    with pytest.raises(ImageError, match="no product found in flat.png"):
        prepare_product(Image.new("L", (80, 80), 200), "flat.png")


def test_predict_reads_a_product_photo_for_a_fashion_checkpoint(fashion_run, tmp_path):
    path = tmp_path / "trouser.jpg"
    photo("trouser").save(path)
    result = run("predict", path, "-c", fashion_run, "--json")
    assert_ok_exit(result)
    (row,) = json.loads(result.stdout)
    assert row["class"] in FASHION_CLASSES and row["path"] == str(path)


def test_checkpoint_class_names_are_checked(tmp_path, fashion_run):
    raw = torch.load(fashion_run, weights_only=True)
    for bad in (["a", "a"] + list("bcdefghi"), [], [3] * 10, "shoes", list("abcdefghijk")):
        raw["classes"] = bad
        torch.save(raw, tmp_path / "bad.pt")
        result = run("evaluate", tmp_path / "bad.pt")
        assert_failed(result, "classes", code=1)


def test_help_lists_the_data_sets():
    for command in ("train", "evaluate", "predict"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "mnist|fashion-mnist" in result.output, command


def test_a_fashion_mnist_image_given_back_is_read_as_it_was():
    original = np.zeros((28, 28), np.uint8)
    original[:, 6:22] = np.linspace(90, 250, 16, dtype=np.uint8)  # its longer side fills 28
    read = prepare_product(Image.fromarray(original)).image
    assert np.abs(read.astype(int) - original.astype(int)).mean() < 12


def test_training_on_from_a_fashion_checkpoint_keeps_its_data_set(in_tmp, fashion_run,
                                                                   tiny_mnist):
    result = run("train", "--init-from", fashion_run, "--data-dir", tiny_mnist, "--epochs", "1",
                 "--train-limit", "200", "--test-limit", "20", "--device", "cpu")
    assert_ok_exit(result)
    ckpt = load_checkpoint("checkpoints/mlp-fashion-mnist-finetuned.pt")
    assert ckpt.dataset == "fashion-mnist" and ckpt.class_names == FASHION_CLASSES


def test_a_folder_of_fashion_photos_is_scored_by_class_name(fashion_run, tmp_path):
    folder = tmp_path / "clothes"
    for name, shape in (("Trouser", "trouser"), ("Bag", "bag"), ("T-shirt-top", "bag")):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            photo(shape, background=235 - 10 * i).save(folder / name / f"{i}.png")
    result = run("evaluate", fashion_run, "--data", folder, "--json")
    assert_ok_exit(result)
    report = json.loads(result.stdout)
    assert report["classes_found"] == ["T-shirt-top", "Trouser", "Bag"] and report["total"] == 6
    (folder / "Sneakers").mkdir()
    photo("bag").save(folder / "Sneakers" / "0.png")
    result = run("evaluate", fashion_run, "--data", folder)
    assert_failed(result, "class folder Sneakers is not a class of the checkpoint (its "
                  "classes: T-shirt/top, Trouser,")


def test_the_serve_page_is_told_what_a_fashion_checkpoint_reads(fashion_run, tmp_path):
    """`GET /api/info` names the data set and what to draw; a drawing is answered by class
    name."""
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    from starlette.testclient import TestClient

    from snncli.serve.app import create_app
    from snncli.serve.service import DigitReader

    reader = DigitReader(fashion_run, "given")
    with TestClient(create_app(reader)) as client:
        info = client.get("/api/info").json()
        assert info["dataset"] == "fashion-mnist" and info["subject"] == "piece of clothing"
        photo("bag").save(tmp_path / "bag.png")
        answer = client.post("/api/predict", content=(tmp_path / "bag.png").read_bytes(),
                             headers={"content-type": "image/png"}).json()
    assert answer["class"] in FASHION_CLASSES and answer["classes"] == list(FASHION_CLASSES)
