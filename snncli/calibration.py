"""Whether a confidence means what it says: reliability tables, and a temperature on the
output scores fitted on held-out training images to compare against.

`predict`'s confidence is the share of output spikes (the mlp: the softmax of its mean
outputs). `reliability` says how often predictions are right by confidence bin on a data
set; `fit_temperature` finds the T for which softmax(scores / T) makes held-out images' true
digits most likely (least negative log-likelihood), the usual calibration of a classifier,
so the two can be compared (benchmarks/calibrate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Confidence bins of the reliability table (lower edges; the last bin ends at 1 inclusive).
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def calibrated(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """[B, C] scores -> [B, C] probabilities: softmax(scores / temperature)."""
    return torch.softmax(scores.double() / temperature, dim=1).to(torch.float32)


def fit_temperature(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T minimising the negative log-likelihood of `labels` under
    softmax(scores / T): a golden-section search over log T in [0.01, 100] (the likelihood is
    unimodal in T)."""
    scores, labels = scores.double(), labels.long()

    def nll(log_t: float) -> float:
        logp = torch.log_softmax(scores / math.exp(log_t), dim=1)
        return float(-logp[torch.arange(len(labels)), labels].mean())

    low, high = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return math.exp((low + high) / 2)


@dataclass
class Reliability:
    """How often predictions are right, by confidence: one row per bin of `BINS` that holds
    any (lower edge, upper edge, images, accuracy), and the accuracy of those at 0.9 or over
    (`sure_accuracy`, of `sure_images`)."""

    rows: list[tuple[float, float, int, float]]
    sure_images: int
    sure_accuracy: float

    def lines(self) -> list[str]:
        out = ["confidence     images  accuracy"]
        for low, high, count, accuracy in self.rows:
            close = "]" if high == 1.0 else ")"
            out.append(f"[{low:.2f}, {high:.2f}{close}  {count:6d}  {100 * accuracy:7.2f}%")
        out.append(f">= 0.90        {self.sure_images:6d}  {100 * self.sure_accuracy:7.2f}%")
        return out


def reliability(confidence: torch.Tensor, correct: torch.Tensor) -> Reliability:
    """The reliability table of predictions with these confidences (of the predicted class)
    and rightness."""
    confidence, correct = confidence.double(), correct.bool()
    rows = []
    for low, high in zip(BINS[:-1], BINS[1:], strict=True):
        pick = (confidence >= low) & ((confidence < high) | (high == 1.0) & (confidence <= 1.0))
        if pick.any():
            rows.append((low, high, int(pick.sum()), float(correct[pick].double().mean())))
    sure = confidence >= 0.9
    accuracy = float(correct[sure].double().mean()) if sure.any() else float("nan")
    return Reliability(rows, int(sure.sum()), accuracy)


def held_out_split(ckpt, data_dir=None):
    """The training images the checkpoint's run held out for validation (never trained on):
    `hold_out` of MNIST's training split with the run's seed and the default size (5,000)."""
    from .data import default_val_size, hold_out, load_split

    train = load_split("train", data_dir)
    return hold_out(train, default_val_size(len(train)), ckpt.seed)[1]


def scores_of(ckpt, split, device: str | torch.device = "cpu"):
    """(model, scores [N, C], predicted [N]) of a checkpoint's model on a data split."""
    from .predict import predict_digits

    model, found = predict_digits(ckpt, [image.numpy() for image in split.images],
                                  torch.device(device))
    return model, found.scores.double(), found.predicted


def confidence_of(model, scores: torch.Tensor, predicted: torch.Tensor,
                  temperature: float | None) -> torch.Tensor:
    """The confidence of each prediction: calibrated with `temperature`, or (None) the
    model's own (share of output spikes, or softmax)."""
    probs = model.confidence(scores) if temperature is None else calibrated(scores, temperature)
    return probs[torch.arange(len(predicted)), predicted]
