"""Checkpoints: one file of plain types, written atomically, read with weights_only=True.

This module alone knows the file's layout: everything else uses the typed `Checkpoint` that
`load_checkpoint` returns and `build_checkpoint` makes (and `Checkpoint.to_dict` writes).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checks import field_problem, show
from .datasets import DATASETS, get_dataset
from .errors import CheckpointError, first_of, one_line
from .files import atomic_write, special_file_kind
from .models import get_model_spec, list_models

FORMAT = "snncli-checkpoint"
FORMAT_VERSION = 2  # the newest this snncli reads
# Version 1 is every checkpoint training writes; version 2 adds weights stored as int8 with
# one scale per row (`weight_scales`, the bundled weights), which older readers cannot use.
PLAIN_FORMAT_VERSION = 1
DEFAULT_DIR = Path("checkpoints")
_REQUIRED = ("format", "format_version", "model", "config", "state_dict", "normalisation")
MNIST_PREPROCESSING = {
    "size": [28, 28],
    "polarity": "white digit on black",
    "layout": "digit fitted in 20x20, centred by mass in 28x28 (MNIST)",
}

PREPROCESSING = {  # how users' images are made like each data set's (snncli.products)
    "mnist": MNIST_PREPROCESSING,
    "fashion-mnist": {
        "size": [28, 28],
        "polarity": "bright product on black",
        "layout": "product's longer side scaled to 28, centred (Fashion-MNIST)",
    },
}


@dataclass
class Metrics:
    """What training recorded about the checkpoint: which one it is and how it scored."""

    checkpoint: str | None = None  # "best" (chosen on validation) or "last"
    selected_on: str | None = None  # "validation", or None when nothing was held out
    evaluated_epoch: int | None = None
    test_accuracy: float | None = None
    test_images: int | None = None
    val_accuracy: float | None = None
    precision: str | None = None  # the precision it was evaluated in while training
    others: dict[str, Any] = field(default_factory=dict)  # further figures, kept as written

    @classmethod
    def from_dict(cls, values: dict) -> Metrics:
        names = {f.name for f in dataclasses.fields(cls)} - {"others"}
        return cls(**{k: v for k, v in values.items() if k in names},
                   others={k: v for k, v in values.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name != "others" and getattr(self, f.name) is not None}
        return known | self.others


@dataclass
class Bundled:
    """Where bundled weights came from and what they scored when they were made."""

    source: str
    dtype: str
    test_accuracy_before: float | None = None  # MNIST test, fp32, before compaction
    test_accuracy_after: float | None = None  # and after
    user_digits_accuracy: float | None = None  # share of tests/data/user_digits read right
    user_digits_images: int | None = None

    @classmethod
    def from_dict(cls, values: Any) -> Bundled | None:
        if not isinstance(values, dict) or not {"source", "dtype"} <= set(values):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Checkpoint:
    """A checkpoint as the tool uses it: the model to rebuild (`model`, `config`,
    `state_dict`), how its input pixels are scaled, the recipe and metrics of the run that
    made it, and, in a resumable `.last.pt`, the whole `training_state`."""

    model: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    normalisation: dict[str, float]  # {"mean", "std"} applied to pixels in [0, 1]
    recipe: dict[str, Any] = field(default_factory=dict)  # name, seed and settings
    metrics: Metrics = field(default_factory=Metrics)
    dataset: str = "mnist"  # what it was trained on (one of DATASETS)
    classes: list[str] | None = None  # each output's label; None = the data set's
    epoch: int | None = None
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(MNIST_PREPROCESSING))
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = PLAIN_FORMAT_VERSION
    bundled: Bundled | None = None
    training_state: dict[str, Any] | None = None
    # A fine-tuned checkpoint's origin (RECORD_FIELDS below; snncli/finetune.py): the weights it
    # started from and the labelled folder it was trained on (path, image counts, classes).
    fine_tuned: dict[str, Any] | None = None

    @property
    def recipe_name(self) -> str | None:
        name = self.recipe.get("recipe")
        return name if isinstance(name, str) else None

    @property
    def seed(self) -> int:
        """The seed of the run that trained it (0 where it is not recorded)."""
        seed = self.recipe.get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0

    @property
    def steps(self) -> int:
        return self.config["steps"]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The label of each output neuron: the recorded ones, else the data set's."""
        return tuple(self.classes) if self.classes else get_dataset(self.dataset).classes

    @property
    def resumable(self) -> bool:
        return isinstance(self.training_state, dict)

    def build_model(self, device: str | torch.device = "cpu"):
        """The registered model this checkpoint describes, with its weights, in eval mode."""
        spec = get_model_spec(self.model)
        model = spec.build(spec.config_cls(**self.config))
        try:
            model.load_state_dict(self.state_dict)
        except Exception:
            raise CheckpointError(
                f"checkpoint weights do not match the {spec.name!r} architecture"
            ) from None
        return model.to(device).eval()

    def to_dict(self) -> dict[str, Any]:
        """The file's contents: plain types and CPU tensors."""
        stored = {
            "format": FORMAT,
            "format_version": self.format_version,
            "model": self.model,
            "dataset": self.dataset,
            "classes": list(self.class_names),
            "config": dict(self.config),
            "state_dict": dict(self.state_dict),
            "normalisation": dict(self.normalisation),
            "preprocessing": dict(self.preprocessing),
            "recipe": dict(self.recipe),
            "metrics": self.metrics.to_dict(),
            "epoch": self.epoch,
            "versions": dict(self.versions),
        }
        if self.bundled is not None:
            stored["bundled"] = self.bundled.to_dict()
        if self.training_state is not None:
            stored["training_state"] = self.training_state
        if self.fine_tuned is not None:
            stored["fine_tuned"] = dict(self.fine_tuned)
        return stored

    @classmethod
    def from_dict(cls, ckpt: dict[str, Any]) -> Checkpoint:
        """A checked file's contents (see `checkpoint_problems`) as a Checkpoint."""
        metrics = ckpt.get("metrics")
        return cls(
            model=ckpt["model"], config=dict(ckpt["config"]), state_dict=ckpt["state_dict"],
            normalisation=dict(ckpt["normalisation"]), recipe=dict(ckpt.get("recipe") or {}),
            metrics=Metrics.from_dict(metrics if isinstance(metrics, dict) else {}),
            dataset=ckpt.get("dataset", "mnist"), classes=ckpt.get("classes"),
            epoch=ckpt.get("epoch"),
            preprocessing=dict(ckpt.get("preprocessing") or MNIST_PREPROCESSING),
            versions=dict(ckpt.get("versions") or {}),
            format_version=ckpt["format_version"], bundled=Bundled.from_dict(ckpt.get("bundled")),
            training_state=ckpt.get("training_state"), fine_tuned=ckpt.get("fine_tuned"),
        )

    def compacted(self, source: str, dtype: str = "int8") -> dict[str, Any]:
        """The file contents of a copy to bundle: weight matrices in `dtype` ("int8":
        symmetric, one scale per output row, a quarter of fp32's size; or "float16"),
        vectors in half precision, no training state, and where it came from."""
        state, scales = {}, {}
        for key, value in self.state_dict.items():
            if dtype == "int8" and value.is_floating_point() and value.dim() >= 2:
                rows = value.float().flatten(1)
                scale = rows.abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny) / 127
                state[key] = (rows / scale[:, None]).round().to(torch.int8).view(value.shape)
                scales[key] = scale
            else:
                state[key] = value.half() if value.is_floating_point() else value
        small = dataclasses.replace(self, state_dict=state, training_state=None,
                                    bundled=Bundled(source=source, dtype=dtype))
        stored = small.to_dict()
        if scales:  # snncli before format version 2 cannot read them: it asks to be upgraded
            stored |= {"weight_scales": scales, "format_version": FORMAT_VERSION}
        return stored


def build_checkpoint(model_name: str, model, *, recipe: dict, metrics: dict,
                     epoch: int, dataset: str = "mnist") -> Checkpoint:
    """Everything needed to rebuild and use `model`, as plain types and CPU tensors."""
    import snntorch
    import torchvision

    from . import __version__

    mean, std = get_model_spec(model_name).normalisation
    return Checkpoint(
        model=model_name,
        config=dataclasses.asdict(model.config),
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        normalisation={"mean": mean, "std": std},
        recipe=dict(recipe),
        metrics=Metrics.from_dict(dict(metrics)),
        dataset=dataset,
        preprocessing=dict(PREPROCESSING[dataset]),
        epoch=epoch,
        versions={
            "snncli": __version__,
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "snntorch": str(snntorch.__version__),
        },
    )


def save_checkpoint(checkpoint: Checkpoint | dict, path: str | Path) -> Path:
    """Write a Checkpoint (or a file's contents, as `Checkpoint.compacted` makes them)."""
    path = Path(path)
    stored = checkpoint.to_dict() if isinstance(checkpoint, Checkpoint) else checkpoint
    atomic_write(path, lambda tmp: torch.save(stored, tmp), what="checkpoint")
    return path


def read_checkpoint_file(path: str | Path) -> Any:
    """A checkpoint file's raw contents (plain types only: weights_only), unchecked."""
    path = Path(path)
    name = one_line(path)
    if path.is_dir():
        raise CheckpointError(f"{name} is a folder, not a checkpoint")
    kind = special_file_kind(path)
    if kind:  # reading it could wait forever (a FIFO) or never end (/dev/zero)
        raise CheckpointError(f"{name} is {kind}, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name} does not exist")
    try:
        with warnings.catch_warnings():  # torch's remarks on odd tensors would be extra lines
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno is None:
            raise CheckpointError(f"{name} is not an snncli checkpoint (cannot be read)") from None
        raise CheckpointError(f"cannot read {name}: {exc.strerror}") from None
    except Exception:
        raise CheckpointError(f"{name} is not an snncli checkpoint (cannot be read)") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint (tensors land on the CPU whatever device trained it).

    Every field a command reads is checked before use: a damaged or tampered file is refused
    in one line (CheckpointError) naming the file, its first problem and how many more.
    """
    ckpt = read_checkpoint_file(path)
    name = one_line(Path(path))
    try:
        problems = expand_stored_weights(ckpt) or checkpoint_problems(ckpt)
    except Exception as exc:  # a structure no check foresaw: still one line, never a traceback
        reason = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise CheckpointError(f"{name} is not a usable snncli checkpoint: {reason}") from None
    if problems:
        raise CheckpointError(f"{name}: {first_of(problems)}")
    return Checkpoint.from_dict(ckpt)


def expand_stored_weights(ckpt: Any) -> list[str]:
    """Weights stored as int8 with one scale per output row (`weight_scales`, as the bundled
    weights are) become the float tensors the model loads; what is wrong with them, if any."""
    if not isinstance(ckpt, dict) or "weight_scales" not in ckpt:
        return []
    scales, state = ckpt.pop("weight_scales"), ckpt.get("state_dict")
    if not isinstance(scales, dict) or not isinstance(state, dict):
        return ["weight_scales must be a mapping of weight names to tensors"]
    state, problems = dict(state), []
    for key, scale in scales.items():
        stored = state.get(key)
        if not (
            isinstance(stored, torch.Tensor) and stored.dtype == torch.int8 and stored.dim() >= 1
            and isinstance(scale, torch.Tensor) and scale.dtype == torch.float32
            and scale.shape == stored.shape[:1] and bool(torch.isfinite(scale).all())
        ):
            problems.append(f"weight_scales {one_line(str(key))} must hold one finite fp32 "
                            "scale per row of an int8 weight")
            continue
        state[key] = stored.float() * scale.view(-1, *[1] * (stored.dim() - 1))
    ckpt["state_dict"] = state
    return problems


def checkpoint_problems(ckpt: Any) -> list[str]:
    """What is wrong with a loaded checkpoint, one message per problem (empty: usable)."""
    if not isinstance(ckpt, dict) or not _is(ckpt.get("format"), str, FORMAT):
        return ["not an snncli checkpoint"]
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        return [f"not a complete snncli checkpoint: it is missing {', '.join(missing)}"]
    version = ckpt["format_version"]
    if field_problem("format_version", version, ("whole", 1, 2**31)):
        return [f"format_version {show(version)} must be a whole number of 1 or more"]
    if version > FORMAT_VERSION:
        return [f"format version {version}; this snncli reads up to {FORMAT_VERSION}: "
                "upgrade snncli"]
    dataset = ckpt.get("dataset", "mnist")
    if not (isinstance(dataset, str) and dataset in DATASETS):
        return [f"dataset {show(dataset)} is not one this snncli knows ({', '.join(DATASETS)})"]
    classes = ckpt.get("classes")
    if classes is not None and not (
        isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)
        and len(set(classes)) == len(classes)
    ):
        return [f"classes {show(classes)} must be a list of distinct names"]
    return [
        *_model_problems(ckpt),
        *fine_tuned_problems(ckpt.get("fine_tuned")),
        *_normalisation_problems(ckpt["normalisation"]),
        *_metrics_problems(ckpt.get("metrics", {})),
        *_recipe_problems(ckpt.get("recipe", {})),
        *_class_count_problems(ckpt),
    ]


def _class_count_problems(ckpt: dict) -> list[str]:
    """A class name for each output, where the checkpoint names its classes."""
    classes, config = ckpt.get("classes"), ckpt["config"]
    outputs = config.get("num_classes") if isinstance(config, dict) else None
    if classes is not None and isinstance(outputs, int) and len(classes) != outputs:
        return [f"it names {len(classes)} classes for {outputs} outputs"]
    return []


# The record of a fine-tuned checkpoint (`Checkpoint.fine_tuned`, snncli/finetune.py):
# each field's check.
RECORD_FIELDS = {
    "init_from": ("text",),
    "data": ("text",),
    "images": ("whole", 1, 2**62),
    "train_images": ("whole", 1, 2**62),
    "held_out": ("whole", 0, 2**62),
    "copies": ("whole", 1, 2**62),
    "mnist_images": ("whole", 0, 2**62),
    "skipped": ("whole", 0, 2**62),
    "classes": ("names",),
    "fingerprint": ("text",),
}


def fine_tuned_problems(record: Any) -> list[str]:
    """What is wrong with a checkpoint's `fine_tuned` record (None: not fine-tuned)."""
    if record is None:
        return []
    if not isinstance(record, dict) or "init_from" not in record:
        return [f"fine_tuned {show(record)} must be a mapping naming init_from"]
    found = []
    for key, value in record.items():
        check = RECORD_FIELDS.get(key)
        if check is None:
            found.append(f"fine_tuned has an unknown field {show(key)}")
        elif check[0] == "names":
            if not names_ok(value):
                found.append(f"fine_tuned classes {show(value)} must be a list of distinct names")
        else:
            problem = field_problem(key, value, check)
            if problem:
                found.append(f"fine_tuned {problem}")
    return found


def names_ok(value: Any) -> bool:
    """A non-empty list of distinct non-empty names."""
    return (isinstance(value, list) and bool(value) and len(set(map(str, value))) == len(value)
            and all(isinstance(v, str) and v for v in value))


def _is(value: Any, kind: type, expected: Any) -> bool:
    """value == expected, for a value of any type (a tensor compared to a str included)."""
    return isinstance(value, kind) and value == expected


def _model_problems(ckpt: dict) -> list[str]:
    """The model name, its config (the config class's own checks) and the weights."""
    name = ckpt["model"]
    if not isinstance(name, str) or name not in list_models():
        return [f"unknown model {show(name)}; choose one of: {', '.join(list_models())}"]
    spec = get_model_spec(name)
    problems = spec.config_cls.problems(ckpt["config"], where="config")
    if problems:
        return problems
    with torch.device("meta"):  # the architecture's shapes, without allocating its weights
        expected = spec.build(spec.config_cls(**ckpt["config"])).state_dict()
    return state_dict_problems(ckpt["state_dict"], expected, name)


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "a scalar"


def _names(keys: list[str], most: int = 5) -> str:
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(one_line(k) for k in keys[:most]) + more


def state_dict_problems(state: Any, expected: dict[str, torch.Tensor], name: str) -> list[str]:
    """Weights: a mapping of exactly the architecture's tensors, shapes and kinds, all finite.

    Non-finite weights (NaN or infinity, a diverged run) are refused: the network would run,
    but its spikes and predictions would mean nothing."""
    if not isinstance(state, dict):
        return [f"state_dict must be a mapping of weight names to tensors, not "
                f"{type(state).__name__}"]
    where = f"weights do not match the {name!r} architecture"
    missing = [k for k in expected if k not in state]
    extra = [str(k) for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"{where}: state_dict lacks {_names(missing)}")
    if extra:
        problems.append(f"{where}: state_dict has weights it does not know: {_names(extra)}")
    for key, want in expected.items():
        have = state.get(key)
        if have is None:
            continue
        if not isinstance(have, torch.Tensor) or have.layout != torch.strided:
            kind = f"a {have.layout} tensor" if isinstance(have, torch.Tensor) else (
                type(have).__name__
            )
            problems.append(f"state_dict {key} must be a dense tensor, not {kind}")
        elif have.device.type != "cpu":
            problems.append(f"state_dict {key} holds no values (a {have.device.type} tensor)")
        elif have.shape != want.shape:
            problems.append(f"{where}: {key} is {_shape(have)}, the architecture's {_shape(want)}")
        elif have.is_floating_point() != want.is_floating_point() or have.is_complex():
            problems.append(f"state_dict {key} holds {have.dtype}, expected {want.dtype}")
        elif have.is_floating_point() and not bool(torch.isfinite(have).all()):
            problems.append(f"state_dict {key} holds NaN or infinite values")
    return problems


def _normalisation_problems(norm: Any) -> list[str]:
    """Pixel normalisation: {"mean": finite number, "std": finite positive number}."""
    if not isinstance(norm, dict):
        return [f"normalisation must be a mapping with mean and std, not {type(norm).__name__}"]
    problems = [f"normalisation has an unknown field {show(k)}" for k in norm
                if k not in ("mean", "std")]
    checks = {"mean": ("number", -1e6, 1e6, False, False),
              "std": ("number", 0, 1e6, True, False)}
    for key, check in checks.items():
        if key not in norm:
            problems.append(f"normalisation lacks {key}")
            continue
        problem = field_problem(key, norm[key], check)
        if problem:
            problems.append(f"normalisation {problem}")
    return problems


def _metrics_problems(metrics: Any) -> list[str]:
    """The recorded metrics that `evaluate` shows beside its own (others are informative)."""
    if not isinstance(metrics, dict):
        return [f"metrics must be a mapping, not {type(metrics).__name__}"]
    checks = {
        "test_accuracy": ("number", 0, 1, False, False),
        "test_images": ("whole", 1, 2**62),
        "precision": ("text",),
    }
    return [f"metrics {p}" for key, check in checks.items() if key in metrics
            for p in [field_problem(key, metrics[key], check)] if p]


def _recipe_problems(recipe: Any) -> list[str]:
    """The training recipe the checkpoint records, checked as training checks it (its name
    and seed beside the settings)."""
    from .recipes import Recipe, RecipeError

    if not isinstance(recipe, dict):
        return [f"recipe must be a mapping, not {type(recipe).__name__}"]
    found = [f"recipe {p}" for key, check in (("recipe", ("text",)), ("seed", ("whole", 0, 2**64)))
             if key in recipe for p in [field_problem(key, recipe[key], check)] if p]
    try:
        Recipe.from_dict({k: v for k, v in recipe.items() if k not in ("recipe", "seed")})
    except RecipeError as exc:
        found += [p if p.startswith("recipe ") else f"recipe {p}" for p in str(exc).splitlines()]
    return found


def model_from_checkpoint(ckpt: Checkpoint | dict, device: str | torch.device = "cpu"):
    """Rebuild the registered model a checkpoint describes and load its weights. A file's
    raw contents are checked first, so one not read by `load_checkpoint` is refused in the
    same words."""
    if not isinstance(ckpt, Checkpoint):
        problems = _model_problems(ckpt) if isinstance(ckpt, dict) and all(
            k in ckpt for k in ("model", "config", "state_dict")) else ["is not a checkpoint"]
        if problems:
            raise CheckpointError(f"checkpoint {first_of(problems)}")
        ckpt = Checkpoint(model=ckpt["model"], config=ckpt["config"],
                          state_dict=ckpt["state_dict"], normalisation={})
    return ckpt.build_model(device)


@dataclass(frozen=True)
class Peek:
    """What a checkpoint file says of itself, read without checking it (enough to choose
    among files): any field it lacks or holds in the wrong type is None."""

    model: str | None
    role: str | None  # "best" or "last", as training saved it
    epochs_done: int | None
    epochs_planned: int | None  # the recipe's epochs
    resumable: bool  # it holds a training state
    dataset: str | None = "mnist"  # what it was trained on (older files: MNIST)


def peek_checkpoint(path: str | Path) -> Peek | None:
    """A quick look at checkpoint `path` (its tensors are mapped, not read); None when it
    cannot be read as a checkpoint file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    if not isinstance(raw, dict):
        return None

    def typed(value: Any, kind: type) -> Any:
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    metrics, recipe = raw.get("metrics"), raw.get("recipe")
    return Peek(
        model=typed(raw.get("model"), str),
        role=typed(metrics.get("checkpoint"), str) if isinstance(metrics, dict) else None,
        epochs_done=typed(raw.get("epoch"), int),
        epochs_planned=typed(recipe.get("epochs"), int) if isinstance(recipe, dict) else None,
        resumable="training_state" in raw,
        dataset=typed(raw.get("dataset", "mnist"), str),
    )


def saved_checkpoints(folder: str | Path = DEFAULT_DIR) -> list[Path]:
    """The .pt files in `folder`, newest first (a sub-folder named *.pt is no checkpoint)."""
    folder = Path(folder)
    files = [p for p in folder.glob("*.pt") if p.is_file()] if folder.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)
