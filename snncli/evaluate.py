"""Scoring a model on MNIST's test set: accuracy, per-class accuracy, confusion, spikes, speed."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from .data import Split, batches, normalise


@dataclass
class Evaluation:
    accuracy: float  # fraction 0-1
    correct: int
    total: int
    per_class: list[float]  # accuracy of each true digit 0-9
    confusion: list[list[int]]  # confusion[true][predicted]
    mean_output_spikes: float | None  # output-layer spikes per image (None: output not spiking)
    images_per_second: float
    seconds: float
    steps: int

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_model(
    model,
    split: Split,
    normalisation: dict,
    device: torch.device,
    batch_size: int = 1000,
    steps: int | None = None,
) -> Evaluation:
    """Score every image of `split` (the last partial batch included)."""
    was_training = model.training
    model.eval()
    steps = steps or model.config.steps
    classes = model.config.num_classes
    confusion = torch.zeros(classes, classes, dtype=torch.long, device=device)
    output_spikes = torch.zeros((), dtype=torch.float64, device=device)
    _sync(device)
    start = time.perf_counter()
    for images, labels in batches(split, batch_size):
        x = normalise(images.to(device, non_blocking=True), **normalisation)
        labels = labels.to(device, non_blocking=True)
        record = model(x, steps=steps)
        scores = model.readout(record)
        predicted = scores.argmax(1)
        confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
        if model.output_is_spikes:
            output_spikes += scores.sum(dtype=torch.float64)
    _sync(device)
    seconds = time.perf_counter() - start
    model.train(was_training)

    confusion = confusion.cpu()
    total = int(confusion.sum())
    correct = int(confusion.diag().sum())
    per_true = confusion.sum(1)
    per_class = [
        float(confusion[i, i]) / int(per_true[i]) if int(per_true[i]) else float("nan")
        for i in range(classes)
    ]
    return Evaluation(
        accuracy=correct / total if total else 0.0,
        correct=correct,
        total=total,
        per_class=per_class,
        confusion=confusion.tolist(),
        mean_output_spikes=float(output_spikes) / total
        if model.output_is_spikes and total
        else None,
        images_per_second=total / seconds if seconds > 0 else float("inf"),
        seconds=seconds,
        steps=steps,
    )
