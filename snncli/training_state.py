"""Checks of a resumable checkpoint's training state, before any of it is used.

A `.last.pt` file holds the whole state of a run (`trainer.Trainer.state_dict`). One edited by
hand or by another tool must not resume as a different run, stop with an internal error half
way, or skip or repeat part of the run: every part is checked for presence and type, and its
position (epoch, batch, iteration, batch order, evaluations) for consistency with the run's
plan and the training set it is resumed on. Each function returns one message per problem
(empty: resumable); the caller says the first in one line.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .checkpoint import Checkpoint, names_ok, state_dict_problems
from .checks import field_problem, show
from .choices import BACKENDS, DEVICES, PRECISIONS
from .models import get_model_spec
from .recipes import Recipe, RecipeError

# Every part `Trainer.state_dict` writes, and nothing else.
PARTS = ("version", "options", "recipe_name", "recipe", "model", "optimiser", "schedule",
         "average", "rng", "epoch", "batch", "iteration", "order", "best_score", "best_row",
         "rows", "losses", "train_seconds", "nproc")
WHOLE = 2**62  # far beyond any real count of epochs, batches or iterations
# The saved run's options (`TrainOptions`), as `Trainer.state_dict` writes them.
OPTIONS = {
    "model": ("text",),
    "recipe": ("text", None),
    "overrides": ("empty",),  # saved empty: the recipe is saved whole
    "seed": ("whole", 0, 2**64 - 1),
    "device": ("choice", DEVICES),
    "data_dir": ("text", None),
    "out": ("text", None),
    "train_limit": ("whole", 1, WHOLE, None),
    "test_limit": ("whole", 1, WHOLE, None),
    "val_size": ("whole", 0, WHOLE, None),
    "eval_every": ("whole", 1, WHOLE, None),
    "eval_epochs": ("whole", 1, WHOLE),
    "backend": ("choice", BACKENDS),
    "precision": ("choice", PRECISIONS),
    "save_every": ("number", 0, math.inf, True, False),
    "plot": ("flag",),
    "resume": ("none",),
    "init_from": ("text", None),
    "data": ("text", None),
    "classes": ("names", None),
    "data_fingerprint": ("text", None),
}
# Options added after states were first saved: a state without them is a run without them.
LATER_OPTIONS = ("init_from", "data", "classes", "data_fingerprint")
ROW_FIELDS = {  # an evaluation's row of the metrics file
    "iteration": ("whole", 1, WHOLE),
    "epoch": ("whole", 1, WHOLE),
    "val_accuracy": ("number", 0, 1, False, False),
    "test_accuracy": ("number", 0, 1, False, False),
    "unaveraged_test_accuracy": ("number", 0, 1, False, False),
    "data_val_accuracy": ("number", 0, 1, False, False),  # a fine-tuning folder's held-out
    "train_seconds": ("number", 0, math.inf, False, False),
}
ROW_NEEDS = ("iteration", "epoch", "test_accuracy", "train_seconds")


def training_state_problems(state: Any, ckpt: Checkpoint) -> list[str]:
    """What is wrong with the training state of the (already checked) checkpoint `ckpt`,
    taken alone: a missing, unknown or mistyped part, a recipe or options out of range,
    weights, optimiser, schedule or average that do not fit the recipe's model, random number
    generator states of the wrong kind. Where the run stands is checked by
    `position_problems`, once the training set is known."""
    if not isinstance(state, dict):
        return [f"its training state must be a mapping, not {type(state).__name__}"]
    missing = [k for k in PARTS if k not in state]
    unknown = [show(k) for k in state if k not in PARTS]
    if missing or unknown:
        return [f"its training state lacks {', '.join(missing)}" if missing else
                f"its training state holds parts this snncli does not know: {', '.join(unknown)}"]
    problems = _options_problems(state["options"], ckpt)
    try:
        recipe = Recipe.from_dict(state["recipe"], get_model_spec(ckpt.model).losses)
    except RecipeError as exc:
        return problems + [p if p.startswith("recipe") else f"recipe {p}"
                           for p in str(exc).splitlines()]
    spec = get_model_spec(ckpt.model)
    if not isinstance(state["recipe_name"], str) or state["recipe_name"] not in spec.recipes:
        problems.append(f"recipe_name {show(state['recipe_name'])} must be one of the "
                        f"{spec.name!r} recipes: {', '.join(spec.recipes)}")
    problems += _counter_problems(state)
    with torch.device("meta"):  # the shapes of the model the recipe builds, no weights
        model = spec.build(spec.config_for(recipe))
    problems += _weights_problems("model", state["model"], model.state_dict(), spec.name)
    problems += _optimiser_problems(state["optimiser"], model, recipe)
    problems += _schedule_problems(state["schedule"], model, recipe)
    problems += _average_problems(state["average"], model, recipe, spec.name)
    problems += _rng_problems(state["rng"])
    return problems


def position_problems(state: dict, recipe: Recipe, train_images: int,
                      val_images: int) -> list[str]:
    """Whether the position of a run (whose training state passed `training_state_problems`
    and whose saved recipe is `recipe`) fits that recipe and the training set it resumes on
    (`train_images` in batches of the recipe's size, `val_images` held out): the epoch, batch
    and iteration of one point of the run as it was saved; this epoch's batch order a
    permutation of those images; the optimiser and schedule as many steps on; the
    evaluations those made before that point (none still to come already there), and the
    best of them the one chosen."""
    per_epoch = -(-train_images // recipe.batch_size)
    epoch, batch, iteration = state["epoch"], state["batch"], state["iteration"]
    saved_epochs = recipe.epochs
    data = (f"{train_images} training images make {per_epoch} batches of "
            f"{recipe.batch_size} an epoch")
    if epoch > saved_epochs + 1 or (epoch == saved_epochs + 1 and batch):
        return [f"its position, epoch {epoch} batch {batch}, is past the end of its run of "
                f"{saved_epochs} epochs"]
    if batch > per_epoch:
        return [f"its position, batch {batch} of epoch {epoch}, is past the end of an epoch: "
                f"{data} (was it saved with other data?)"]
    if iteration != (epoch - 1) * per_epoch + batch:
        return [f"its iteration {iteration} is not where epoch {epoch}, batch {batch} is: "
                f"{data} (was it saved with other data?)"]
    problems = _order_problems(state["order"], batch, train_images)
    steps = _optimiser_steps(state["optimiser"])
    if steps and steps != {iteration}:
        problems.append(f"its optimiser has taken {_listed(steps)} steps, not its {iteration} "
                        f"iterations")
    schedule = state["schedule"]
    if schedule is not None and schedule.get("last_epoch") != iteration:
        problems.append(f"its schedule stands at step {show(schedule.get('last_epoch'))}, not "
                        f"at its iteration {iteration}")
    problems += _losses_problems(state["losses"], iteration)
    problems += _rows_problems(state, per_epoch, saved_epochs, val_images)
    return problems


def _listed(values: set) -> str:
    return " or ".join(str(v) for v in sorted(values))


def _value_problem(name: str, value: Any, check: tuple) -> str | None:
    """field_problem, with what only options have: a check ending in None (the setting may
    be unset), None alone, an empty mapping."""
    kind = check[0]
    if kind == "none":
        return None if value is None else f"{name} {show(value)} must be None"
    if kind == "empty":
        empty = isinstance(value, dict) and not value
        return None if empty else f"{name} {show(value)} must be an empty mapping"
    if check[-1] is None:
        return None if value is None else _value_problem(name, value, check[:-1])
    if kind == "names":
        return None if names_ok(value) else f"{name} {show(value)} must be a list of names"
    return field_problem(name, value, check)


def _options_problems(options: Any, ckpt: Checkpoint) -> list[str]:
    if not isinstance(options, dict):
        return [f"options must be a mapping, not {type(options).__name__}"]
    missing = [k for k in OPTIONS if k not in options and k not in LATER_OPTIONS]
    unknown = [show(k) for k in options if k not in OPTIONS]
    if missing:
        return [f"options lack {', '.join(missing)}"]
    if unknown:
        return [f"options hold settings this snncli does not know: {', '.join(unknown)}"]
    found = [f"options {p}" for name, check in OPTIONS.items() if name in options
             for p in [_value_problem(name, options[name], check)] if p]
    if not found and options["model"] != ckpt.model:
        found.append(f"options model {show(options['model'])} is not the checkpoint's model "
                     f"{ckpt.model!r}")
    if not found and options.get("init_from") is not None and options.get("classes") is None:
        found.append("options classes must name each output of a run with init_from")
    if not found and options.get("data") is not None and None in (
            options.get("init_from"), options.get("data_fingerprint")):
        found.append("options of a run with data must hold init_from and data_fingerprint")
    return found


def _counter_problems(state: dict) -> list[str]:
    checks = {
        "epoch": ("whole", 1, WHOLE),
        "batch": ("whole", 0, WHOLE),
        "iteration": ("whole", 0, WHOLE),
        "nproc": ("whole", 1, 2**20),
        "train_seconds": ("number", 0, math.inf, False, False),
    }
    found = [p for name, check in checks.items() for p in [field_problem(name, state[name], check)]
             if p]
    score = state["best_score"]
    if not (isinstance(score, float) and (score == -math.inf or 0 <= score <= 1)):
        found.append(f"best_score {show(score)} must be a number in [0, 1] (or -inf: none yet)")
    if not isinstance(state["rows"], list):
        found.append(f"rows must be a list of evaluations, not {type(state['rows']).__name__}")
    else:
        for i, row in enumerate(state["rows"]):
            found += _row_problems(f"rows[{i}]", row)
    if state["best_row"] is not None:
        found += _row_problems("best_row", state["best_row"])
    if not isinstance(state["losses"], list):
        found.append(f"losses must be a list, not {type(state['losses']).__name__}")
    return found


def _row_problems(name: str, row: Any) -> list[str]:
    if not isinstance(row, dict):
        return [f"{name} must be a mapping of figures, not {type(row).__name__}"]
    found = [f"{name} lacks {k}" for k in ROW_NEEDS if k not in row]
    found += [f"{name} has an unknown field {show(k)}" for k in row if k not in ROW_FIELDS]
    found += [f"{name} {p}" for k, check in ROW_FIELDS.items() if k in row
              for p in [field_problem(k, row[k], check)] if p]
    return found


def _weights_problems(name: str, weights: Any, expected: dict, model: str) -> list[str]:

    found = [p.replace("state_dict", name) for p in state_dict_problems(weights, expected, model)]
    return [f"{name} {p}" if p.startswith("weights") else p for p in found]


def _optimiser_problems(saved: Any, model: torch.nn.Module, recipe: Recipe) -> list[str]:
    """Adam's (or AdamW's) state: one group of the model's parameters with finite settings,
    and per parameter a step count and two moving averages of its shape (the second, of
    squares, not negative: its square root divides the step)."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        return ["optimiser must be a mapping of state and param_groups"]
    groups, state = saved["param_groups"], saved["state"]
    shapes = [p.shape for p in model.parameters()]
    if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)):
        return ["optimiser param_groups must be a list of one group"]
    group, found = groups[0], []
    if group.get("params") != list(range(len(shapes))):
        found.append(f"optimiser's group must hold the model's {len(shapes)} parameters")
    needs = {"lr": ("number", 0, math.inf, False, False),
             "eps": ("number", 0, math.inf, True, False),
             "weight_decay": ("number", 0, math.inf, False, False)}
    if recipe.schedule == "onecycle":
        needs |= {k: ("number", 0, math.inf, False, False)
                  for k in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")}
    for key, check in needs.items():
        problem = field_problem(key, group[key], check) if key in group else f"{key} is missing"
        if problem:
            found.append(f"optimiser {problem}")
    betas = group.get("betas")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(not field_problem("b", b, ("number", 0, 1, False, True)) for b in betas)):
        found.append(f"optimiser betas {show(betas)} must be two numbers in [0, 1)")
    if not isinstance(state, dict):
        return found + ["optimiser state must be a mapping"]
    for index, entry in state.items():
        if not (isinstance(index, int) and 0 <= index < len(shapes)):
            found.append(f"optimiser state of parameter {show(index)}, which the model lacks")
            continue
        found += _moments_problems(index, entry, shapes[index])
    return found


def _moments_problems(index: int, entry: Any, shape: torch.Size) -> list[str]:
    where = f"optimiser state of parameter {index}"
    if not isinstance(entry, dict) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
        return [f"{where} must hold step, exp_avg and exp_avg_sq"]
    step = entry["step"]
    if not (isinstance(step, torch.Tensor) and step.dim() == 0 and step.device.type == "cpu"
            and bool(torch.isfinite(step)) and float(step) >= 0):
        return [f"{where}: step must be a count"]
    for key in ("exp_avg", "exp_avg_sq"):
        value = entry[key]
        if not (isinstance(value, torch.Tensor) and value.layout == torch.strided
                and value.device.type == "cpu" and value.is_floating_point()
                and value.shape == shape):
            return [f"{where}: {key} must be a float tensor of the parameter's shape "
                    f"{'x'.join(map(str, shape))}"]
        if not bool(torch.isfinite(value).all()) or (key == "exp_avg_sq" and bool(
                (value < 0).any())):
            return [f"{where}: {key} holds values it cannot hold (NaN, infinite or negative)"]
    return []


def _optimiser_steps(saved: dict) -> set[int]:
    return {int(entry["step"]) for entry in saved["state"].values()}


def _schedule_problems(saved: Any, model: torch.nn.Module, recipe: Recipe) -> list[str]:
    """The one-cycle schedule's state when the recipe has one (None otherwise), each setting
    of the type this torch's OneCycleLR keeps (total steps and phases are the run's plan,
    which replaces them)."""
    if recipe.schedule != "onecycle":
        return [] if saved is None else [
            f"schedule must be None: the recipe's schedule is {recipe.schedule}"]
    if not isinstance(saved, dict):
        return [f"schedule must be the one-cycle schedule's state, not {type(saved).__name__}"]
    from .train_setup import make_optimiser, make_schedule

    fresh = make_schedule(make_optimiser(model, recipe), recipe, 1).state_dict()
    found = []
    for key, value in saved.items():
        if key in ("total_steps", "_schedule_phases") or key not in fresh:
            continue
        want = fresh[key]
        if type(value) is not type(want) or (isinstance(want, list) and (
                len(value) != len(want) or not all(_is_finite(v) for v in value))):
            found.append(f"schedule {key} {show(value)} must be like {show(want)}")
    if not found and saved.get("_anneal_func_type", "cos") not in ("cos", "linear"):
        found.append(f"schedule _anneal_func_type {show(saved['_anneal_func_type'])} must be "
                     "cos or linear")
    if "last_epoch" not in saved:
        found.append("schedule lacks last_epoch")
    return found


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _average_problems(saved: Any, model: torch.nn.Module, recipe: Recipe, name: str) -> list[
        str]:
    """The weight average when the recipe keeps one (ema above 0; None otherwise): the
    model's tensors and a count, as AveragedModel saves them."""
    if not recipe.ema:
        return [] if saved is None else ["average must be None: the recipe keeps no average"]
    expected = {"n_averaged": torch.zeros((), dtype=torch.long)} | {
        f"module.{k}": v for k, v in model.state_dict().items()
    }
    return _weights_problems("average", saved, expected, name)


def _rng_problems(saved: Any) -> list[str]:
    want = torch.get_rng_state()
    if not (isinstance(saved, dict) and set(saved) == {"torch", "shuffle"} and all(
            isinstance(v, torch.Tensor) and v.dtype == want.dtype and v.shape == want.shape
            and v.device.type == "cpu" for v in saved.values())):
        return [f"rng must hold the torch and shuffle generators' states ({want.numel()} "
                "bytes each)"]
    return []


def _order_problems(order: Any, batch: int, train_images: int) -> list[str]:
    """This epoch's batch order: drawn at its first batch, so None at batch 0 and from then
    on a permutation of the training images."""
    if batch == 0:
        return [] if order is None else ["order must be None at the start of an epoch"]
    if not (isinstance(order, torch.Tensor) and order.dtype == torch.int64 and order.dim() == 1
            and order.layout == torch.strided and order.device.type == "cpu"):
        return ["order must be this epoch's order of the training images (int64, one row)"]
    if len(order) != train_images:
        return [f"its batch order holds {len(order)} images, not the {train_images} training "
                "images (was it saved with other data?)"]
    if not torch.equal(order.sort().values, torch.arange(train_images)):
        return ["order must take every training image once"]
    return []


def _losses_problems(losses: list, iteration: int) -> list[str]:
    last = 0
    for pair in losses:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and not field_problem("i", pair[0], ("whole", last + 1, iteration))
                and _is_finite(pair[1])):
            return [f"losses must be (iteration, finite loss) pairs in order, up to iteration "
                    f"{iteration}; found {show(pair)}"]
        last = pair[0]
    return []


def _rows_problems(state: dict, per_epoch: int, saved_epochs: int, val_images: int) -> list[str]:
    """The evaluations so far: in order, each where its epoch is, none at or beyond the
    position that is still to come; validation scores exactly when images were held out; the
    best the first with the highest validation score (or the latest without validation)."""
    rows, iteration, epoch = state["rows"], state["iteration"], state["epoch"]
    options = state["options"]
    last = 0
    for i, row in enumerate(rows):
        it, ep = row["iteration"], row["epoch"]
        if not last < it <= iteration:
            return [f"rows[{i}] at iteration {it} is out of order or beyond its iteration "
                    f"{iteration}"]
        if not (ep - 1) * per_epoch < it <= ep * per_epoch:
            return [f"rows[{i}] at iteration {it} is not in its epoch {ep} of {per_epoch} "
                    "batches"]
        if ("val_accuracy" in row) != (val_images > 0):
            return [f"rows[{i}] {'lacks' if val_images else 'has'} a validation score, but "
                    f"{val_images} images are held out"]
        last = it
    due = state["batch"] == per_epoch and (
        epoch % options["eval_epochs"] == 0 or epoch == saved_epochs)
    if due and rows and rows[-1]["iteration"] == iteration:
        return [f"it holds the evaluation at iteration {iteration}, the end of epoch {epoch}, "
                "which is still to come: it would be repeated"]
    if val_images:
        best = max(rows, key=lambda r: r["val_accuracy"]) if rows else None
        score = best["val_accuracy"] if best else -math.inf
    else:
        best, score = (rows[-1] if rows else None), -math.inf
    if state["best_row"] != best or state["best_score"] != score:
        return ["best_row and best_score must be the best of its rows"]
    return []

