"""Memory per image: a 50-megapixel photo is shrunk as it is read, never converted to float64
whole, so `snn predict` on it peaks under 300 MB above a process that has already loaded torch
and the model and classified a small image. Measured in a process of its own (its peak
resident memory, which counts Pillow's and numpy's buffers alike)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from snncli.pretrained import bundled_path

REPO = Path(__file__).resolve().parents[1]
SIZE = (8160, 6120)  # 49.9 megapixels, under the 50 million refused as a decompression bomb
LIMIT_MB = 300
MEASURE = """
import json, resource, sys
from snncli.cli import app

def predict(path):
    try:
        app(["predict", path, "-c", sys.argv[1], "--json"], standalone_mode=False)
    except SystemExit:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux

base = predict(sys.argv[2])
print(json.dumps({"base": base, "peaks": [predict(path) - base for path in sys.argv[3:]]}))
"""


def ring(mode: str, background, ink) -> Image.Image:
    """A zero drawn with a thick pen across most of a 50-megapixel canvas."""
    image = Image.new(mode, SIZE, background)
    w, h = SIZE
    ImageDraw.Draw(image).ellipse((w // 2 - 900, h // 2 - 1400, w // 2 + 900, h // 2 + 1400),
                                  outline=ink, width=260)
    return image


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = {"jpeg": folder / "photo.jpg", "png": folder / "photo.png",
             "png with transparency": folder / "drawing.png"}
    image = ring("RGB", (235, 230, 220), (20, 20, 30))
    image.save(files["jpeg"], quality=90)
    image.save(files["png"], compress_level=1)
    del image
    ring("RGBA", (0, 0, 0, 0), (20, 20, 30, 255)).save(files["png with transparency"],
                                                      compress_level=1)
    Image.fromarray(np.full((60, 60), 255, np.uint8)).save(folder / "small.png")
    return files


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in kB (Linux)")
def test_a_50_megapixel_image_costs_under_300_mb(photos, tmp_path):
    small = next(iter(photos.values())).parent / "small.png"
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bundled_path("csnn")), str(small),
         *map(str, photos.values())],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    *predictions, report = done.stdout.strip().splitlines()
    found = json.loads(report)
    peaks = dict(zip(photos, found["peaks"], strict=True))
    print(f"peak above {found['base']:.0f} MB:", {k: round(v) for k, v in peaks.items()})
    assert all(peak < LIMIT_MB for peak in peaks.values()), peaks
    # Each was read and classified (the zero is a blank canvas's ring, not a blank image).
    read = [json.loads(line) for line in predictions[1:]]
    assert [entry[0].get("prediction") for entry in read] == [0, 0, 0], read
