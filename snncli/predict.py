"""Classifying users' own digit images with a trained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import model_from_checkpoint
from .data import normalise
from .preprocess import load_digit
from .runtime import tune_for_device

BATCH = 256


@dataclass
class Prediction:
    path: str
    prediction: int
    confidence: float  # share of output spikes (spiking output) or softmax probability
    scores: list[float]  # spike counts per class, or mean output per class
    runner_up: int
    runner_up_confidence: float
    image: np.ndarray  # the 28x28 uint8 input the network saw

    def to_dict(self, output_is_spikes: bool) -> dict:
        return {
            "path": self.path,
            "prediction": self.prediction,
            "confidence": round(self.confidence, 6),
            "spike_counts": [int(s) for s in self.scores] if output_is_spikes else None,
            "scores": [round(float(s), 6) for s in self.scores],
        }


@torch.no_grad()
def predict_digits(ckpt: dict, digits: list[np.ndarray], device: torch.device, steps=None):
    """uint8 [28, 28] digits -> (scores [N, C], confidences [N, C]) on the CPU."""
    model = model_from_checkpoint(ckpt, device)
    tune_for_device(model, device, min(BATCH, max(1, len(digits))))
    all_scores, all_conf = [], []
    for start in range(0, len(digits), BATCH):
        chunk = torch.from_numpy(np.stack(digits[start : start + BATCH])).to(device)
        x = normalise(chunk, **ckpt["normalisation"])
        scores = model.readout(model(x, steps=steps))
        all_scores.append(scores.cpu())
        all_conf.append(model.confidence(scores).cpu())
    return model, torch.cat(all_scores), torch.cat(all_conf)


def predict_files(ckpt: dict, paths: list[str | Path], device: torch.device, steps=None):
    """Preprocess every image (failing on the first bad one), then classify them in batches."""
    digits = [load_digit(p) for p in paths]
    model, scores, conf = predict_digits(ckpt, digits, device, steps)
    results = []
    for i, path in enumerate(paths):
        order = torch.argsort(scores[i], descending=True, stable=True)
        best, second = int(order[0]), int(order[1])
        results.append(
            Prediction(
                path=str(path),
                prediction=best,
                confidence=float(conf[i, best]),
                scores=scores[i].tolist(),
                runner_up=second,
                runner_up_confidence=float(conf[i, second]),
                image=digits[i],
            )
        )
    return model, results
