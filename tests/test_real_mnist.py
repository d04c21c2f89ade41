"""The one slow test: the real MNIST under ../shared/data/mnist (skipped where it is absent)."""

import json

from PIL import Image
from typer.testing import CliRunner

from snncli.cli import app
from snncli.data import load_split


def test_mlp_learns_real_mnist_and_predicts_its_digits_as_png(real_mnist, tmp_path):
    runner = CliRunner()
    out = tmp_path / "mlp.pt"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "mlp",
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
