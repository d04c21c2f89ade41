"""What `snn serve` computes for one image, without any web code: the image's bytes read and
prepared as `snn predict` prepares a file, the network run on it, and everything the page
shows as plain JSON types. Tests and scripts can call it directly."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint
from ..datasets import get_dataset
from ..errors import SnnError
from ..predict import Classifier, predict_prepared, prepare_image
from ..preprocess import Prepared
from ..pretrained import bundled_path
from ..runtime import resolve_device

MAX_STEPS = 100  # time steps a request may ask for: the page's slider, and a bound on the work


class StepsError(SnnError):
    """A `steps` value out of range or not a whole number (a 400 from the API)."""


class DigitReader:
    """One checkpoint's model, ready to read digit images one at a time for any number of
    callers at once.

    Images are prepared on one thread and run through the network on another, each in order:
    two requests overlap (one prepared while the other runs), and neither the model nor the
    preparation (whose warning filters are process-wide) is ever used by two threads at once.
    The model always runs on the same thread, so torch keeps one set of worker threads.
    """

    def __init__(self, path: str | Path, why: str = "", device: str = "auto",
                 precision: str = "auto", ckpt: Checkpoint | None = None):
        self.path, self.why = Path(path), why
        self.checkpoint = ckpt or load_checkpoint(path)
        self._prepare = ThreadPoolExecutor(1, thread_name_prefix="snn-prepare")
        self._run = ThreadPoolExecutor(1, thread_name_prefix="snn-model")
        self.classify: Classifier = self._run.submit(
            Classifier, self.checkpoint, resolve_device(device), None, 1, precision
        ).result()
        self.model = self.classify.model
        self.classes = list(self.checkpoint.class_names)
        self.digits = self.classify.digits  # how images are read: as digits, or as products
        # The first run creates the kernels' primitives (about 0.1 s): not in a user's request.
        self._run.submit(self.classify, [np.zeros((28, 28), np.uint8)]).result()

    @property
    def steps(self) -> int:
        """The time steps the model was trained with: a request's default."""
        return int(self.model.config.steps)

    def info(self) -> dict:
        """The model the page talks to: what `GET /api/info` answers."""
        return {
            "model": self.checkpoint.model,
            "checkpoint": str(self.path),
            "bundled": self.path.resolve() == bundled_path(self.checkpoint.model).resolve(),
            "chosen": self.why,
            "steps": self.steps,
            "max_steps": MAX_STEPS,
            "classes": self.classes,
            "dataset": self.checkpoint.dataset,
            "subject": get_dataset(self.checkpoint.dataset).subject,
            "output_is_spikes": bool(self.model.output_is_spikes),
            "precision": self.model.precision,
            "layers": [name for name, _ in self.model.spiking_layers()],
        }

    def check_steps(self, steps: int | str | None) -> int:
        """A request's time steps: a whole number from 1 to MAX_STEPS (default: as trained)."""
        if steps is None or steps == "":
            return self.steps
        try:
            value = int(steps)
        except (TypeError, ValueError):
            value = None
        if value is None or not 1 <= value <= MAX_STEPS or str(steps).strip() != str(value):
            raise StepsError(f"steps must be a whole number from 1 to {MAX_STEPS}, got "
                             f"{str(steps)[:40]!r}")
        return value

    def prepare(self, data: bytes, name: str = "<upload>") -> Prepared:
        """The MNIST-like digit of an image file's bytes (ImageError when there is none)."""
        return self._prepare.submit(prepare_image, bytes(data), name, self.digits).result()

    def simulate(self, digit: Prepared, name: str = "<upload>", steps=None) -> dict:
        """A prepared digit through the network: its JSON answer."""
        return self._run.submit(self._simulate, digit, name, self.check_steps(steps)).result()

    def predict(self, data: bytes, name: str = "<upload>", steps=None) -> dict:
        """An image file's bytes -> the fields of `snn predict --json` for it, and the output
        layer over time (`raster`, [steps][classes]), the 28x28 `image` the network saw,
        `classes`, `steps`, the runner-up and the firing rate of each spiking layer."""
        steps = self.check_steps(steps)
        return self.simulate(self.prepare(data, name), name, steps)

    async def predict_async(self, data: bytes, name: str = "<upload>", steps=None) -> dict:
        """`predict` for an event loop: waits without blocking it."""
        steps = self.check_steps(steps)
        digit = await _wait(self._prepare.submit(prepare_image, bytes(data), name, self.digits))
        return await _wait(self._run.submit(self._simulate, digit, name, steps))

    def close(self) -> None:
        self._prepare.shutdown(cancel_futures=True)
        self._run.shutdown(cancel_futures=True)

    def _simulate(self, digit: Prepared, name: str, steps: int) -> dict:
        spikes = bool(self.model.output_is_spikes)
        with layer_activity(self.model) as activity:
            found = predict_prepared(self.classify, digit, name, steps)
        raster = found.raster
        return {
            **found.to_dict(spikes),
            "runner_up": found.runner_up,
            "runner_up_confidence": round(found.runner_up_confidence, 6),
            "shares": [round(float(s), 6) for s in found.shares],
            "classes": self.classes,
            "steps": steps,
            "raster": raster.astype(int).tolist() if spikes else np.round(raster, 4).tolist(),
            "image": found.image.tolist(),
            "layers": activity,
            "model": self.checkpoint.model,
        }


async def _wait(future: Future):
    return await asyncio.wrap_future(future)


@contextmanager
def layer_activity(model):
    """Within it, each spiking layer of `model` that runs adds its firing rate (spikes per
    neuron per time step) to the list yielded: [{"name", "rate"}], in layer order."""
    layers = model.spiking_layers() if model.backend == "engine" else []
    counts = [[0.0, 0] for _ in layers]

    def counter(index):
        def hook(module, inputs, output):
            counts[index][0] += float(output[0].sum(dtype=torch.float32))
            counts[index][1] += output[0].numel()

        return hook

    found: list[dict] = []
    lifs = model.lifs if layers else []  # the snnTorch backend does not run self.lifs
    hooks = [lif.register_forward_hook(counter(i)) for i, lif in enumerate(lifs)]
    try:
        yield found
    finally:
        for hook in hooks:
            hook.remove()
    found.extend({"name": name, "rate": round(spiked / sites, 6) if sites else 0.0}
                 for (name, _), (spiked, sites) in zip(layers, counts, strict=True))
