"""Classifying users' own digit images with a trained checkpoint."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import model_from_checkpoint
from .data import normalise
from .errors import ImageError
from .preprocess import load_digit
from .runtime import resolve_precision, tune_for_device

BATCH = 256
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass
class Prediction:
    path: str
    prediction: int
    confidence: float  # share of output spikes (spiking output) or softmax probability
    scores: list[float]  # spike counts per class, or mean output per class
    shares: list[float]  # per class: share of output spikes, or softmax probability
    runner_up: int
    runner_up_confidence: float
    image: np.ndarray  # the 28x28 uint8 input the network saw
    raster: np.ndarray  # [T, C] output layer over time (spikes, or outputs for the mlp)

    def to_dict(self, output_is_spikes: bool) -> dict:
        return {
            "path": self.path,
            "prediction": self.prediction,
            "confidence": round(self.confidence, 6),
            "spike_counts": [int(s) for s in self.scores] if output_is_spikes else None,
            "scores": [round(float(s), 6) for s in self.scores],
        }


@torch.no_grad()
def predict_digits(
    ckpt: dict, digits: list[np.ndarray], device: torch.device, steps=None, precision="auto"
):
    """uint8 [28, 28] digits -> (model, scores [N, C], confidences [N, C], records [T, N, C]).

    Tensors come back on the CPU; records are the output layer over time (the spike raster).
    `model.precision` says what `precision` (auto, fp32 or bf16) resolved to.
    """
    model = model_from_checkpoint(ckpt, device)
    tune_for_device(model, device, min(BATCH, max(1, len(digits))))
    model.precision = resolve_precision(precision, device)
    records = []
    for start in range(0, len(digits), BATCH):
        chunk = torch.from_numpy(np.stack(digits[start : start + BATCH])).to(device)
        records.append(model(normalise(chunk, **ckpt["normalisation"]), steps=steps).cpu())
    record = torch.cat(records, dim=1)
    scores = model.readout(record)
    return model, scores, model.confidence(scores), record


def expand_inputs(arguments: list[str]) -> list[str]:
    """Folders become their image files, glob patterns their matches; '-' stays (stdin)."""
    found: list[str] = []
    for arg in arguments:
        path = Path(arg)
        if arg == "-":
            found.append(arg)
        elif path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ImageError(f"folder {arg} holds no image files")
            found.extend(str(p) for p in images)
        elif any(ch in arg for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise ImageError(f"no file matches {arg}")
            found.extend(matches)
        else:
            found.append(arg)
    return found


def predict_files(
    ckpt: dict,
    arguments: list[str],
    device: torch.device,
    steps=None,
    stdin: bytes | None = None,
    precision: str = "auto",
):
    """Preprocess every image (failing on the first bad one), then classify them in batches."""
    paths = expand_inputs(arguments)
    digits = [load_digit(stdin, "<stdin>") if p == "-" else load_digit(p) for p in paths]
    model, scores, conf, record = predict_digits(ckpt, digits, device, steps, precision)
    results = []
    for i, path in enumerate(paths):
        order = torch.argsort(scores[i], descending=True, stable=True)
        best, second = int(order[0]), int(order[1])
        results.append(
            Prediction(
                path="<stdin>" if path == "-" else str(path),
                prediction=best,
                confidence=float(conf[i, best]),
                scores=scores[i].tolist(),
                shares=conf[i].tolist(),
                runner_up=second,
                runner_up_confidence=float(conf[i, second]),
                image=digits[i],
                raster=record[:, i].numpy(),
            )
        )
    return model, results
