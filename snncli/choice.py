"""Which checkpoint `evaluate` and `predict` use when none is named, and why (one policy for
every command).

In this order: the path given (a `.last.pt` of an unfinished run too: it was asked for by
name); `bundled`, the weights that ship with snncli; the newest checkpoint in checkpoints/ (of
the model asked for) of a finished run, a run's best checkpoint before its `.last.pt`, a run
that stopped before its last epoch (its `.last.pt` says so) passed over; the bundled weights.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import DEFAULT_DIR, CheckpointError, peek_checkpoint, saved_checkpoints
from .datasets import DATASETS, DEFAULT_DATASET, get_dataset
from .pretrained import bundled_path

BUNDLED = "bundled"  # `--checkpoint bundled`: the weights that ship with snncli


def choose_checkpoint(path: str | Path | None, model: str | None = None,
                      folder: Path = DEFAULT_DIR, dataset: str | None = None
                      ) -> tuple[Path, str]:
    """(checkpoint, why it was chosen), by the policy above; `model` defaults to csnn where
    the bundled weights are used; `dataset` (None: any) passes over the checkpoints of other
    data sets (the bundled weights are MNIST's)."""
    name = model or "csnn"
    unbundled = dataset not in (None, DEFAULT_DATASET)
    if unbundled and path is not None and str(path) == BUNDLED:
        title = get_dataset(dataset).title
        raise CheckpointError(f"the bundled weights are MNIST's, not {title}'s")
    if path is not None and str(path) == BUNDLED:
        return _bundled(name), f"using the bundled {name} weights (--checkpoint bundled)"
    if path:
        return Path(path), f"using {path}"
    passed: list[str] = []  # checkpoints of unfinished runs, newest first
    for candidate in _run_checkpoints(folder):
        seen = peek_checkpoint(candidate)
        if model is not None and (seen is None or seen.model != model):
            continue
        if dataset is not None and (seen is None or seen.dataset != dataset):
            continue
        progress = run_state(candidate)
        if progress and progress[0] < progress[1]:
            run = f"{resumable_of(candidate)} ({progress[0]} of {progress[1]} epochs)"
            passed += [run] if run not in passed else []  # a run once: by its .last.pt
            continue
        best = seen is not None and seen.role == "best"
        what = ("the best checkpoint of the newest finished run" if progress and best else
                "the newest finished checkpoint" if progress else "the newest checkpoint")
        if seen is not None and seen.dataset not in (None, DEFAULT_DATASET):
            what += f" ({get_dataset(seen.dataset).title})" if seen.dataset in DATASETS else ""
        return candidate, (f"using {candidate}, {what} in {folder}/{_passed_over(passed)} "
                           f"(--checkpoint bundled: the bundled weights)")
    if unbundled:
        raise CheckpointError(
            f"no finished {get_dataset(dataset).title} checkpoint{f' of {model}' if model else ''}"
            f" in {folder}/ (none is bundled): train one with 'snn train --dataset {dataset}'"
            f" or pass a checkpoint path"
        )
    bundled = _bundled(name, f"no finished checkpoint in {folder}/ and ")
    if passed:
        return bundled, (f"using the bundled {name} weights{_passed_over(passed)} (give one "
                         f"with --checkpoint, or finish it with 'snn train --resume')")
    return bundled, f"using the bundled {name} weights (train your own with 'snn train')"


def resumable_of(path: Path) -> Path:
    """The resumable checkpoint of the run that wrote checkpoint `path` (`x.pt`: `x.last.pt`)."""
    return path if path.name.endswith(".last.pt") else path.with_name(path.stem + ".last.pt")


def run_state(path: Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) of the run that wrote checkpoint `path`, as its resumable
    checkpoint (`path` itself, or the `.last.pt` beside a best checkpoint) says; None when
    nothing says (no `.last.pt`, or one that cannot be read)."""
    last = resumable_of(path)
    seen = peek_checkpoint(last) if last.is_file() else None
    if seen is None or not seen.resumable or None in (seen.epochs_done, seen.epochs_planned):
        return None
    return seen.epochs_done, seen.epochs_planned


def _passed_over(unfinished: list[str]) -> str:
    if not unfinished:
        return ""
    more = f" and {len(unfinished) - 1} more" if len(unfinished) > 1 else ""
    return f", not the unfinished run {unfinished[0]}{more}"


def _bundled(name: str, also: str = "") -> Path:
    """The bundled weights of model `name`, or a CheckpointError (`also` says what else is
    missing)."""
    bundled = bundled_path(name)
    if not bundled.is_file():
        raise CheckpointError(
            f"{also}no bundled {name} weights in this install: train one with 'snn train "
            f"--model {name}' or pass a checkpoint path"
        )
    return bundled


def _run_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, newest first, each run's best `<name>.pt` in the place of
    its `<name>.last.pt` (the run's end), so that a finished run offers its best first."""
    ordered: list[Path] = []
    for path in saved_checkpoints(folder):
        if path.name.endswith(".last.pt"):
            best = path.with_name(path.name.removesuffix(".last.pt") + ".pt")
            if best.is_file() and best not in ordered:
                ordered.append(best)
        if path not in ordered:
            ordered.append(path)
    return ordered
