"""Classifying users' own images (digits, or products for a Fashion-MNIST checkpoint) with a
trained checkpoint."""

from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint
from .data import normalise
from .datasets import DIGITS, get_dataset
from .errors import ImageError, one_line
from .files import special_file_kind
from .models.base import Classified
from .preprocess import Prepared, load_prepared
from .runtime import tune_for_device

BATCH = 256  # images read and classified at a time
RASTER_IMAGES = 20  # --raster draws the first this many (one panel each)
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
    label: int | None = None  # the true class, when known (test-set samples)
    low_contrast: bool = False  # its ink was faint and read by stretching it (LOW_CONTRAST)
    classes: tuple[str, ...] = DIGITS  # the name of each class (output neuron)

    def name(self, index: int | None) -> str:
        """The name of class `index` ("7", or "Sneaker" for Fashion-MNIST)."""
        return "-" if index is None else self.classes[index]

    def to_dict(self, output_is_spikes: bool) -> dict:
        known = {} if self.label is None else {
            "label": self.label, "correct": self.label == self.prediction
        }
        return {
            "path": self.path,
            "prediction": self.prediction,
            "class": self.name(self.prediction),
            "confidence": round(self.confidence, 6),
            "spike_counts": [int(s) for s in self.scores] if output_is_spikes else None,
            "scores": [round(float(s), 6) for s in self.scores],
            "low_contrast": self.low_contrast,
            **known,
        }


@dataclass
class Failure:
    """An input that could not be classified: it could not be read, or holds no digit."""

    path: str
    error: str  # one line, naming the input

    def to_dict(self, output_is_spikes: bool = True) -> dict:
        return {"path": self.path, "error": self.error}


class Classifier:
    """A checkpoint's model, ready to classify batches of 28x28 digits."""

    def __init__(self, ckpt: Checkpoint, device: torch.device, steps=None, batch: int = BATCH,
                 precision: str = "auto"):
        self.model = ckpt.build_model(device)
        tune_for_device(self.model, device, batch, precision=precision)
        self.normalisation = ckpt.normalisation
        self.device, self.steps = device, steps
        self.classes = ckpt.class_names
        self.digits = get_dataset(ckpt.dataset).digits  # how users' images are read

    @torch.no_grad()
    def __call__(self, digits: list[np.ndarray], steps: int | None = None) -> Classified:
        """uint8 [28, 28] digits (one batch) -> the model's scores, ranking and record (the
        output layer over time: the spike raster), on the CPU; `steps` overrides the
        classifier's time steps for this batch."""
        batch = torch.from_numpy(np.stack(digits)).to(self.device)
        found = self.model.classify(normalise(batch, **self.normalisation),
                                    steps=steps or self.steps)
        return Classified(found.record.cpu(), found.scores.cpu(), found.ranking.cpu())


def predict_digits(
    ckpt: Checkpoint, digits: list[np.ndarray], device: torch.device, steps=None, precision="auto"
) -> tuple[torch.nn.Module, Classified]:
    """uint8 [28, 28] digits -> (model, their scores [N, C], ranking [N, C] and records
    [T, N, C]), classified in batches of BATCH; tensors come back on the CPU.
    `model.precision` says what `precision` (auto, fp32 or bf16) resolved to."""
    classify = Classifier(ckpt, device, steps, min(BATCH, max(1, len(digits))), precision)
    parts = [classify(digits[i : i + BATCH]) for i in range(0, len(digits), BATCH)]
    return classify.model, Classified(
        torch.cat([p.record for p in parts], dim=1),
        torch.cat([p.scores for p in parts]),
        torch.cat([p.ranking for p in parts]),
    )


def expand_inputs(arguments: list[str]) -> list[str | Failure]:
    """Folders become their image files, glob patterns their matching files; '-' stays (stdin).

    A folder without images or a pattern matching nothing is a Failure in its place; when
    nothing at all is selected that is an ImageError (one line per argument).
    """
    found: list[str | Failure] = []
    for arg in arguments:
        path = Path(arg)
        if arg == "-":
            found.append(arg)
        elif not arg.strip():  # Path("") is the current folder: not what an empty name means
            found.append(Failure(arg, f"{arg!r} is not a file name"))
        elif path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            empty = Failure(arg, f"folder {one_line(arg)} holds no image files")
            found.extend([str(p) for p in images] or [empty])
        elif any(ch in arg for ch in "*?[") and not path.exists():
            matches = [m for m in sorted(glob.glob(arg, recursive=True)) if not Path(m).is_dir()]
            found.extend(matches or [Failure(arg, f"no file matches {one_line(arg)}")])
        else:
            found.append(arg)
    if all(isinstance(item, Failure) for item in found):
        raise ImageError("\n".join(item.error for item in found))
    return found


def read_digit(path: str, stdin: bytes | None = None, digits: bool = True) -> Prepared | Failure:
    """The MNIST-like digit of one input (`digits` False: its Fashion-MNIST-like product), or a
    Failure saying in one line why there is none."""
    name = "<stdin>" if path == "-" else path
    label = one_line(name)
    kind = None if path == "-" else special_file_kind(path)
    if kind:  # reading it could wait forever (a FIFO) or never end (/dev/zero)
        return Failure(name, f"{label} is {kind}, not an image file")
    try:
        return prepare_image((stdin or b"") if path == "-" else path, label, digits)
    except ImageError as exc:
        return Failure(name, str(exc))


def prepare_image(source: str | bytes, label: str, digits: bool = True) -> Prepared:
    """The MNIST-like digit (`digits` False: the Fashion-MNIST-like product) of an image file
    or an image file's bytes; ImageError (one line, naming it as `label`) when it cannot be
    read or holds no digit."""
    try:
        with warnings.catch_warnings():
            # A numerical warning means this image's digit is not to be trusted: it fails
            # alone, in one line, instead of printing lines of its own.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", RuntimeWarning)
            if digits:
                return load_prepared(source, label)
            from .preprocess import open_image
            from .products import prepare_product

            return prepare_product(open_image(source, label), label)
    except ImageError:
        raise
    except Exception as exc:  # an image the pipeline cannot handle must not stop the others
        reason = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ImageError(
            f"{label} could not be processed: {reason or type(exc).__name__}"
        ) from None


def predict_prepared(classify: Classifier, digit: Prepared, name: str,
                     steps: int | None = None) -> Prediction:
    """One prepared digit classified (at `steps` time steps, default the classifier's): its
    Prediction, as `predict_files` makes it for a file."""
    found = classify([digit.image], steps)
    return _prediction(classify, name, digit.image, found, 0, digit.low_contrast)


def predict_files(
    ckpt: Checkpoint,
    arguments: list[str],
    device: torch.device,
    steps=None,
    stdin: bytes | None = None,
    precision: str = "auto",
):
    """-> (model, iterator of Prediction or Failure, one per input in order).

    Inputs are read and classified BATCH at a time as the iterator is consumed, so any number
    of them takes the memory of one batch; an input that cannot be read is a Failure and the
    others are still classified. Many files are read by several processes (`image_readers`)."""
    items = expand_inputs(arguments)
    classify = Classifier(ckpt, device, steps, min(BATCH, len(items)), precision)
    return classify.model, _predict_batches(classify, items, stdin)


def _predict_batches(classify: Classifier, items: list[str | Failure], stdin: bytes | None):
    readers = image_readers(len(items))
    try:
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            read = _read_chunk(chunk, stdin, readers, classify.digits)
            yield from _classified(classify, chunk, read)
    finally:
        if readers is not None:
            readers.shutdown(cancel_futures=True)


# Preparing an image takes about 5 ms of Python and numpy, five to ten times its share of the
# classification; with this many inputs or more, READERS processes (default: one per CPU
# core, at most 4) read them, and the batch they fill is classified here as before.
PARALLEL_FROM = 64
READERS: int | None = None


def image_readers(count: int):
    """A pool of processes to read `count` inputs with, or None to read them here: for fewer
    than PARALLEL_FROM, on one core, or where processes cannot be forked (not Linux)."""
    import os
    import sys

    workers = READERS or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)
    if count < PARALLEL_FROM or workers < 2 or not sys.platform.startswith("linux"):
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forked: the workers start at once, with the modules and settings of this process
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_reader_started)


def _reader_started() -> None:
    """In a reading process: Ctrl-C is for the main process to handle (it stops the pool),
    and stdout and stderr are not held open, so a reader left behind cannot keep a pipe that
    the command wrote to from ending."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)


def read_digits(paths: list[str], digits: bool = True) -> list[Prepared | Failure]:
    """Each image file of `paths` made like the data set's images as `predict` makes it (its
    Prepared digit, or product where `digits` is False, or a Failure saying why not), in
    order; many are read by forked processes as there."""
    readers = image_readers(len(paths))
    try:
        return _read_chunk(list(paths), None, readers, digits)
    finally:
        if readers is not None:
            readers.shutdown(cancel_futures=True)


def _read_chunk(chunk: list[str | Failure], stdin: bytes | None, readers,
                digits: bool = True) -> list:
    """Each input of `chunk` read: its Prepared digit or a Failure, in order."""
    files = [i for i, item in enumerate(chunk) if not isinstance(item, Failure) and item != "-"]
    read: list = [item if isinstance(item, Failure) else None for item in chunk]
    if readers is not None and files:
        from concurrent.futures.process import BrokenProcessPool

        try:
            read_one = partial(read_digit, digits=digits)
            for i, digit in zip(files, readers.map(read_one, [chunk[i] for i in files],
                                                   chunksize=8), strict=True):
                read[i] = digit
        except BrokenProcessPool:  # a reader died (killed for memory): read the rest here
            pass
    return [digit if digit is not None else read_digit(item, stdin, digits)
            for item, digit in zip(chunk, read, strict=True)]


def _classified(classify: Classifier, chunk: list, read: list):
    """The Prediction or Failure of each input of a chunk, its digits classified at once."""
    digits = [d.image for d in read if not isinstance(d, Failure)]
    if digits:
        found = classify(digits)
    index = 0
    for item, digit in zip(chunk, read, strict=True):
        if isinstance(digit, Failure):
            yield digit
            continue
        yield _prediction(classify, item, digit.image, found, index, digit.low_contrast)
        index += 1


def predict_samples(ckpt: Checkpoint, count: int, seed: int, device: torch.device, steps=None,
                    data_dir=None, precision: str = "auto"):
    """-> (model, iterator of Prediction): `count` random test images of the checkpoint's
    data set, drawn by `seed`, each with its true label; named `<data set>-test-<index>`."""
    from .data import sample_test_images

    indices, images, labels = sample_test_images(count, seed, data_dir, ckpt.dataset)
    classify = Classifier(ckpt, device, steps, min(BATCH, count), precision)

    def predictions():
        for start in range(0, count, BATCH):
            digits = [img.numpy() for img in images[start : start + BATCH]]
            found = classify(digits)
            for i, digit in enumerate(digits):
                name = f"{ckpt.dataset}-test-{indices[start + i]}"
                prediction = _prediction(classify, name, digit, found, i)
                prediction.label = int(labels[start + i])
                yield prediction

    return classify.model, predictions()


def _prediction(classify: Classifier, path: str, digit: np.ndarray, found: Classified,
                index: int, low_contrast: bool = False) -> Prediction:
    """The Prediction for image `index` of a classified batch (`low_contrast`: its ink was
    stretched to be read)."""
    model = classify.model
    scores, record = found.scores[index], found.record[:, index]
    conf = model.confidence(found.scores[index : index + 1])[0]
    order = torch.argsort(found.ranking[index], descending=True, stable=True)
    best, second = int(order[0]), int(order[1])
    return Prediction(
        path="<stdin>" if path == "-" else str(path),
        prediction=best,
        confidence=float(conf[best]),
        scores=scores.tolist(),
        shares=conf.tolist(),
        runner_up=second,
        runner_up_confidence=float(conf[second]),
        image=digit,
        raster=record.numpy().copy(),  # not a view that would keep the whole batch alive
        classes=classify.classes,
        low_contrast=low_contrast,
    )


def user_digit_accuracy(ckpt: Checkpoint, folder: str | Path, precision: str = "fp32") -> dict:
    """Share of the images in `folder` (each named after its digit, like tests/data/
    user_digits/7_ballpoint_0003.jpg) that the checkpoint reads right, on the CPU."""
    _, results = predict_files(ckpt, [str(folder)], torch.device("cpu"), precision=precision)
    right = [isinstance(r, Prediction) and r.prediction == int(Path(r.path).name[0])
             for r in results]
    return {"user_digits_accuracy": sum(right) / len(right), "user_digits_images": len(right)}

