"""Scoring a model on its data set's test split: accuracy, per-class accuracy, confusion,
spikes, speed."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoint import Checkpoint
from .checks import MAX_STEPS
from .data import Split, batches, normalise
from .errors import SnnError


@dataclass
class Evaluation:
    accuracy: float  # fraction 0-1
    correct: int
    total: int
    per_class: list[float | None]  # accuracy of each true digit 0-9 (None: none in the set)
    confusion: list[list[int]]  # confusion[true][predicted]
    mean_output_spikes: float | None  # output-layer spikes per image (None: output not spiking)
    images_per_second: float
    seconds: float
    steps: int
    precision: str = "fp32"  # what the conv/linear layers ran in (autocast), fp32 or bf16
    # Activity of the spiking layers (engine backend): spikes per neuron per step, by layer,
    # and the usual energy proxy, synaptic operations (spike x fan-out) per image.
    firing_rates: dict[str, float] | None = None
    decays: dict[str, float] | None = None  # each layer's membrane decay (beta/tau), learned or not
    synops_per_image: float | None = None
    dense_macs_per_image: int | None = None  # the first layer's MACs on the analogue image

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
    layers = model.spiking_layers() if model.backend == "engine" else []
    spikes = torch.zeros(len(layers), dtype=torch.float64, device=device)
    sites = [0] * len(layers)  # neurons x steps x images seen by each layer

    def counter(index):
        def hook(module, inputs, output):
            # Each batch's count as an fp32 sum (exact enough for a rate), accumulated across
            # batches in float64.
            spikes[index] += output[0].sum(dtype=torch.float32)
            sites[index] += output[0].numel()

        return hook

    if device.type == "cuda" and len(split):
        # Untimed and uncounted: at a shape's first batch cuDNN times its algorithms and
        # Triton compiles, which is start-up cost, not the speed of inference.
        model(normalise(split.images[:batch_size].to(device), **normalisation), steps=steps)
    lifs = model.lifs if layers else []  # the snnTorch backend does not run self.lifs
    hooks = [lif.register_forward_hook(counter(i)) for i, lif in enumerate(lifs)]
    _sync(device)
    start = time.perf_counter()
    for images, labels in batches(split, batch_size):
        x = normalise(images.to(device, non_blocking=True), **normalisation)
        labels = labels.to(device, non_blocking=True)
        result = model.classify(x, steps=steps)
        scores, predicted = result.scores, result.predicted
        confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
        if model.output_is_spikes:
            output_spikes += scores.sum(dtype=torch.float64)
    _sync(device)
    seconds = time.perf_counter() - start
    model.train(was_training)
    for hook in hooks:
        hook.remove()

    confusion = confusion.cpu()
    total = int(confusion.sum())
    correct = int(confusion.diag().sum())
    per_true = confusion.sum(1)
    per_class = [
        float(confusion[i, i]) / int(per_true[i]) if int(per_true[i]) else None
        for i in range(classes)
    ]
    activity = _activity(model, layers, lifs, spikes.cpu().tolist(), sites, total)
    return Evaluation(
        **activity,
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
        precision=model.precision,
    )


def _activity(model, layers, lifs, counts: list[float], sites: list[int], total: int) -> dict:
    """Firing rate and decay per spiking layer and synaptic operations per image."""
    if not layers or not total:
        return {}
    return {
        "firing_rates": {
            name: counts[i] / sites[i] if sites[i] else 0.0 for i, (name, _) in enumerate(layers)
        },
        "decays": {name: float(lif.decay()) for (name, _), lif in zip(layers, lifs, strict=True)},
        "synops_per_image": sum(c * f for c, (_, f) in zip(counts, layers, strict=True)) / total,
        "dense_macs_per_image": model.dense_macs(),
    }


def steps_sweep(model, split, normalisation, device, steps_list, batch_size=1000) -> list[dict]:
    """Accuracy of the same trained weights simulated for each number of time steps."""
    rows = []
    for steps in steps_list:
        result = evaluate_model(model, split, normalisation, device, batch_size, steps)
        rows.append({"steps": steps, "accuracy": result.accuracy, "seconds": result.seconds})
    return rows


def parse_steps_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SnnError(f"--steps-sweep takes comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise SnnError(f"--steps-sweep needs positive numbers, got {text!r}")
    if max(values) > MAX_STEPS:
        raise SnnError(f"--steps-sweep numbers must be at most {MAX_STEPS:,}, got {text!r}")
    return values


@torch.no_grad()
def read_as(model, split: Split, normalisation: dict, device: torch.device,
            batch_size: int = 1000, steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the class each image of `split` is read as, and the model's confidence per class
    [N, C]: the share of output spikes, or the softmax probability), on the CPU."""
    was_training = model.training
    model.eval()
    predicted, confidence = [], []
    for images, _ in batches(split, batch_size):
        found = model.classify(normalise(images.to(device), **normalisation), steps=steps)
        predicted.append(found.predicted.cpu())
        confidence.append(model.confidence(found.scores).float().cpu())
    model.train(was_training)
    classes = model.config.num_classes
    return (torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long),
            torch.cat(confidence) if confidence else torch.zeros(0, classes))


@dataclass
class FolderScore:
    """A checkpoint on a labelled folder (`--data`): beside the usual Evaluation, each
    misread file and the mean confidence given to the true class (a figure that moves
    even when the accuracy cannot)."""

    root: str
    classes: tuple[str, ...]  # the checkpoint's class names, by label
    found: list[str]  # the class folders found
    files: int  # image files found, read or not
    skipped: list[tuple[str, str]]  # (file, why) not read
    misread: list[dict]  # {"path", "true", "read_as", "confidence"}, in file order
    true_confidence: float  # mean confidence of the true class

    def to_dict(self) -> dict:
        return {"data": self.root, "classes_found": self.found, "files": self.files,
                "skipped": [{"path": p, "error": e} for p, e in self.skipped],
                "true_class_confidence": self.true_confidence, "misread": self.misread}


def score_folder(model, folder, normalisation: dict, device: torch.device,
                 batch_size: int = 1000, steps: int | None = None) -> FolderScore:
    """The misread files of a read labelled folder (`folders.LabelledFolder`) and the mean
    confidence of each image's true class."""
    predicted, confidence = read_as(model, folder.split, normalisation, device, batch_size, steps)
    labels = folder.split.labels.cpu()
    truth = confidence[torch.arange(len(labels)), labels] if len(labels) else confidence[:0, 0]
    misread = [
        {"path": folder.paths[i], "true": folder.classes[int(labels[i])],
         "read_as": folder.classes[int(predicted[i])],
         "confidence": round(float(confidence[i, predicted[i]]), 6)}
        for i in (predicted != labels).nonzero().squeeze(1).tolist()
    ]
    return FolderScore(str(folder.root), folder.classes, folder.found, folder.files,
                       folder.skipped, misread, float(truth.double().mean()) if len(truth) else 0.0)


@dataclass
class CheckpointReport:
    """What `snn evaluate` shows: a checkpoint scored on the test split, or on a labelled
    folder (`folder`), and a steps sweep."""

    path: Path
    checkpoint: Checkpoint
    result: Evaluation
    sweep: list[dict]
    folder: FolderScore | None = None


def evaluate_checkpoint(
    path: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 1000,
    limit: int | None = None,
    steps: int | None = None,
    backend: str = "engine",
    precision: str = "auto",
    sweep: list[int] | tuple[int, ...] = (),
    dataset: str | None = None,
    data: str | Path | None = None,
) -> CheckpointReport:
    """Score a checkpoint (default: the newest in checkpoints/, else the bundled csnn) on the
    test split of the data set it was trained on (`dataset`, when given, must be that one),
    or on the labelled image folder `data` (snncli/folders.py; `limit` then keeps its first
    N image files)."""
    from .checkpoint import load_checkpoint
    from .choice import choose_checkpoint
    from .data import load_split
    from .datasets import check_trained_on, get_dataset
    from .runtime import resolve_device, tune_for_device

    path = choose_checkpoint(path, dataset=dataset)[0]
    ckpt = load_checkpoint(path)
    check_trained_on(ckpt.dataset, dataset, path)
    dev = resolve_device(device)
    model = ckpt.build_model(dev)
    tune_for_device(model, dev, batch_size, backend=backend, precision=precision)
    folder = None
    if data is not None:
        from .folders import read_labelled_folder

        folder = read_labelled_folder(data, ckpt.class_names, limit,
                                      digits=get_dataset(ckpt.dataset).digits)
        split = folder.split
    else:
        split = load_split("test", data_dir, limit, ckpt.dataset)
    result = evaluate_model(model, split, ckpt.normalisation, dev, batch_size, steps)
    rows = steps_sweep(model, split, ckpt.normalisation, dev, list(sweep), batch_size)
    scored = folder and score_folder(model, folder, ckpt.normalisation, dev, batch_size, steps)
    return CheckpointReport(path, ckpt, result, rows, scored or None)
