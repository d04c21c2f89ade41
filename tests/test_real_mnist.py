"""The slow tests: the real MNIST at $SNN_TEST_MNIST or ../shared/data/mnist (skipped where it
is absent)."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from snncli.checkpoint import load_checkpoint
from snncli.cli import app
from snncli.data import load_split
from snncli.predict import predict_digits
from snncli.preprocess import mnist_like, open_image

USER_DIGITS = Path(__file__).parent / "data" / "user_digits"


def test_mlp_learns_real_mnist_and_predicts_its_digits_as_png(real_mnist, tmp_path):
    runner = CliRunner()
    out = tmp_path / "mlp.pt"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "mlp",
            "--recipe",
            "seed",
            "--data-dir",
            str(real_mnist),
            "--out",
            str(out),
            "--train-limit",
            "38400",
            "--device",
            "cpu",
        ],  # 300 iterations of 128
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(out), "--data-dir", str(real_mnist), "--json"])
    report = json.loads(result.stdout)
    assert report["total"] == 10_000  # every test image, no dropped last batch
    assert report["accuracy"] > 0.90, report["accuracy"]

    test = load_split("test", real_mnist, limit=20)
    paths = []
    for i, image in enumerate(test.images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image.numpy()).save(paths[-1])
    result = runner.invoke(app, ["predict", *map(str, paths), "--checkpoint", str(out), "--json"])
    predicted = [p["prediction"] for p in json.loads(result.stdout)]
    right = sum(int(p == t) for p, t in zip(predicted, test.labels.tolist(), strict=True))
    assert right >= 18, (predicted, test.labels.tolist())

    # The realistic user-made set: the pipeline must read most of it, a plain resize cannot.
    paths = sorted(p for p in USER_DIGITS.iterdir() if p.suffix in (".png", ".jpg"))
    labels = np.array([int(p.name[0]) for p in paths])
    kinds = np.array([p.stem.split("_")[2] for p in paths])
    images = [open_image(p) for p in paths]
    ckpt = load_checkpoint(out)
    cpu = torch.device("cpu")
    _, found = predict_digits(ckpt, [mnist_like(im) for im in images], cpu)
    right = found.predicted.numpy() == labels
    plain = [np.asarray(im.convert("L").resize((28, 28))) for im in images]
    _, found = predict_digits(ckpt, plain, cpu)
    resized = (found.predicted.numpy() == labels).mean()
    assert right.mean() >= 0.85 and resized < 0.4, (right.mean(), resized)
    # Each kind added for real users' misreads (issue 21) is read too; European 1s are the
    # model's to learn (the recipe setting `styles`), not the pipeline's.
    added = ("small1px", "mnistlike", "ringgrey", "edgefragment", "ballpoint")
    by_kind = {k: right[kinds == k].mean() for k in added}
    assert all((kinds == k).sum() == 20 for k in added), by_kind
    assert min(by_kind.values()) >= 0.88, by_kind


def test_bundled_weights_score_what_they_record(real_mnist):
    """The weights shipped in the package: their recorded figures are what they score, the
    compaction cost at most MAX_ACCURACY_CHANGE points, and the csnn keeps its promises."""
    from bundle_weights import MAX_ACCURACY_CHANGE

    from snncli.evaluate import evaluate_model
    from snncli.predict import user_digit_accuracy
    from snncli.pretrained import bundled_models, bundled_path

    assert bundled_models() == ["csnn", "mlp"]
    test = load_split("test", real_mnist)
    for name in bundled_models():
        ckpt = load_checkpoint(bundled_path(name))
        figures = ckpt.bundled
        scored = evaluate_model(ckpt.build_model(), test, ckpt.normalisation, torch.device("cpu"))
        assert scored.accuracy == figures.test_accuracy_after, name
        moved = abs(figures.test_accuracy_after - figures.test_accuracy_before)
        assert moved * 100 <= MAX_ACCURACY_CHANGE, name
        users = user_digit_accuracy(ckpt, USER_DIGITS)
        assert users["user_digits_accuracy"] == figures.user_digits_accuracy, name
        assert users["user_digits_images"] == figures.user_digits_images, name
    csnn = load_checkpoint(bundled_path("csnn")).bundled
    assert csnn.test_accuracy_after >= 0.993 and csnn.user_digits_accuracy >= 0.99
