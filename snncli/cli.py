"""The `snn` command line: parses options, calls the library, draws Rich output.

Heavy modules (torch and everything that imports it) are imported inside commands so that
`snn --help` stays instant.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from .errors import SnnError

out = Console()
err = Console(stderr=True)


class SnnGroup(TyperGroup):
    """Turns every SnnError into one red line on stderr and exit code 1, in one place."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SnnError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
        except OSError as exc:  # the file system said no: disk full, not a folder, permissions
            where = f" ({exc.filename})" if exc.filename else ""
            err.print(
                f"[bold red]error:[/] {escape(str(exc.strerror or exc))}{escape(where)}",
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=SnnGroup,
    help="Train, evaluate and run spiking neural networks on handwritten digits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="SNN_DATA_DIR",
    help="Folder with the four MNIST IDX files (gz or raw).",
)
DeviceOption = typer.Option(Device.auto, "--device", help="auto = CUDA, then MPS, then CPU.")


class Backend(str, Enum):
    engine = "engine"
    snntorch = "snntorch"


BackendOption = typer.Option(
    Backend.engine, "--backend", help="engine (fast) or snntorch (the reference step loop)."
)


class Augment(str, Enum):
    none = "none"
    light = "light"
    full = "full"


class Init(str, Enum):
    pytorch = "pytorch"
    calibrated = "calibrated"


class Norm(str, Enum):
    none = "none"
    batch = "batch"


class Decay(str, Enum):
    fixed = "fixed"
    learned = "learned"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


PrecisionOption = typer.Option(
    Precision.auto,
    "--precision",
    help="auto (bf16 where the device has native bf16 arithmetic, else fp32), fp32, or bf16 "
    "(conv/linear layers in bf16, membranes in fp32).",
)


@app.command("models")
def models_command() -> None:
    """List the registered models and their training recipes."""
    from .registry import RECIPE_KEYS, create_model, get_model_spec, list_models

    table = Table(title="Registered models")
    for column in ("name", "parameters", "time steps", "summary"):
        table.add_column(
            column, justify="right" if column in ("parameters", "time steps") else "left"
        )
    recipe_tables = []
    for name in list_models():
        spec = get_model_spec(name)
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        steps = spec.recipes[spec.default_recipe]["steps"]
        table.add_row(name, f"{params:,}", str(steps), spec.summary)
        # One column per recipe, one row per setting: stays narrow however many settings.
        recipes = Table(
            title=f"{name} recipes (--recipe NAME; * = default)",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
        )
        recipes.add_column("setting", no_wrap=True)
        for recipe_name in spec.recipes:
            default = recipe_name == spec.default_recipe
            recipes.add_column(recipe_name + (" *" if default else ""), no_wrap=True)
        for key in RECIPE_KEYS:
            label = "time steps" if key == "steps" else key.replace("_", " ")
            recipes.add_row(label, *(_setting(key, r[key]) for r in spec.recipes.values()))
        recipe_tables.append(recipes)
    out.print(table)
    for recipes in recipe_tables:
        out.print(recipes)


def _setting(key: str, value) -> str:
    if key == "ema" and not value:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


@app.command("train")
def train_command(
    model: str = typer.Option(
        "csnn", "--model", "-m", help="Registered model name (see 'snn models')."
    ),
    recipe: str = typer.Option(
        None, "--recipe", "-r", help="Named training recipe (default: the model's default)."
    ),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Default: the model's recipe."),
    steps: int = typer.Option(None, "--steps", min=1, help="Time steps per image."),
    batch_size: int = typer.Option(None, "--batch-size", min=1),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate (positive)."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = DeviceOption,
    data_dir: Path = DataDirOption,
    out_path: Path = typer.Option(
        None, "--out", help="Best checkpoint path (default checkpoints/<model>.pt)."
    ),
    train_limit: int = typer.Option(
        None, "--train-limit", min=1, help="Use the first N training images."
    ),
    test_limit: int = typer.Option(
        None, "--test-limit", min=1, help="Use the first N test images."
    ),
    eval_every: int = typer.Option(
        None, "--eval-every", min=1, help="Also evaluate every N iterations."
    ),
    eval_epochs: int = typer.Option(
        1, "--eval-epochs", min=1, help="Evaluate after every N epochs (and after the last)."
    ),
    backend: Backend = BackendOption,
    precision: Precision = PrecisionOption,
    augment: Augment = typer.Option(
        None,
        "--augment",
        help="none, light (shifts, small rotations) or full (also scale and stroke width, for "
        "your own images). Default: the recipe's.",
    ),
    init: Init = typer.Option(
        None,
        "--init",
        help="pytorch (default layer init) or calibrated (weights scaled until every spiking "
        "layer fires). Default: the recipe's.",
    ),
    norm: Norm = typer.Option(
        None,
        "--norm",
        help="none, or batch (batch norm before each hidden spiking layer). Default: the "
        "recipe's.",
    ),
    loss: str = typer.Option(
        None,
        "--loss",
        help="Training loss: csnn rate or count (cross-entropy of each step's spikes, or of the "
        "spike counts); mlp mean. Default: the recipe's.",
    ),
    ema: float = typer.Option(
        None,
        "--ema",
        help="Decay of a moving average of the weights that is evaluated and saved, such as "
        "0.999; 0 turns it off. Default: the recipe's.",
    ),
    surrogate: float = typer.Option(
        None,
        "--surrogate",
        help="Surrogate gradient of the spike: csnn fast-sigmoid slope (higher = narrower), mlp "
        "triangle width gamma. Default: the recipe's.",
    ),
    decay: Decay = typer.Option(
        None,
        "--decay",
        help="fixed (csnn beta 0.5, mlp tau 0.5), or learned per spiking layer from there. "
        "Default: the recipe's.",
    ),
) -> None:
    """Train a model on MNIST; saves best and last checkpoints, a metrics file and a plot."""
    from .train import TrainOptions, train
    from .ui import TrainProgress

    options = TrainOptions(
        model=model,
        recipe=recipe,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device.value,
        data_dir=str(data_dir) if data_dir else None,
        out=str(out_path) if out_path else None,
        train_limit=train_limit,
        test_limit=test_limit,
        eval_every=eval_every,
        eval_epochs=eval_epochs,
        backend=backend.value,
        precision=precision.value,
        augment=augment.value if augment else None,
        init=init.value if init else None,
        norm=norm.value if norm else None,
        loss=loss,
        ema=ema,
        surrogate=surrogate,
        decay=decay.value if decay else None,
    )
    with TrainProgress(out) as progress:
        result = train(options, on_event=progress.handle)
    table = Table(title=f"{model}: training finished", show_header=False)
    table.add_row("best test accuracy", f"{100 * result.best_accuracy:.2f}%")
    table.add_row("last test accuracy", f"{100 * result.last_evaluation.accuracy:.2f}%")
    table.add_row("training time", f"{result.train_seconds:.1f} s")
    table.add_row("best checkpoint", str(result.best_path))
    table.add_row("last checkpoint", str(result.last_path))
    table.add_row("metrics", str(result.metrics_path))
    if result.plot_path:
        table.add_row("plot", str(result.plot_path))
    out.print(table)


@app.command("evaluate")
def evaluate_command(
    checkpoint: Path = typer.Argument(None, help="Default: the newest checkpoint in checkpoints/."),
    data_dir: Path = DataDirOption,
    device: Device = DeviceOption,
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N test images."),
    steps: int = typer.Option(None, "--steps", min=1, help="Time steps (default: as trained)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    backend: Backend = BackendOption,
    precision: Precision = PrecisionOption,
    sweep: str = typer.Option(
        None, "--steps-sweep", help="Also score at these time steps, e.g. 5,10,25,50,100."
    ),
    plot: Path = typer.Option(None, "--plot", help="Write confusion matrix (+ sweep) PNG."),
) -> None:
    """Score a checkpoint on the MNIST test set."""
    from .checkpoint import default_checkpoint, load_checkpoint, model_from_checkpoint
    from .data import load_split
    from .evaluate import evaluate_model, parse_steps_list, steps_sweep
    from .runtime import resolve_device, resolve_precision, tune_for_device
    from .ui import evaluation_tables

    sweep_steps = parse_steps_list(sweep) if sweep else []
    path = checkpoint or default_checkpoint()
    ckpt = load_checkpoint(path)
    dev = resolve_device(device.value)
    model = model_from_checkpoint(ckpt, dev)
    tune_for_device(model, dev, batch_size)
    model.backend = backend.value
    model.precision = resolve_precision(precision.value, dev)
    split = load_split("test", str(data_dir) if data_dir else None, limit)
    result = evaluate_model(model, split, ckpt["normalisation"], dev, batch_size, steps)
    sweep_rows = steps_sweep(model, split, ckpt["normalisation"], dev, sweep_steps, batch_size)
    if plot:
        from .plots import plot_evaluation

        plot_evaluation(result, sweep_rows, plot, title=f"{ckpt['model']}: {path}")
    if as_json:
        report = {"checkpoint": str(path), "model": ckpt["model"], **result.to_dict()}
        print(json.dumps(report | ({"steps_sweep": sweep_rows} if sweep_rows else {})))
        return
    for table in evaluation_tables(path, ckpt, result, sweep_rows):
        out.print(table)
    if plot:
        out.print(f"plot written to {plot}", highlight=False)


@app.command("predict")
def predict_command(
    images: list[str] = typer.Argument(
        ..., help="Image files, folders or glob patterns; '-' reads one image from stdin."
    ),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", "-c", help="Default: newest in checkpoints/."
    ),
    device: Device = DeviceOption,
    steps: int = typer.Option(None, "--steps", min=1, help="Time steps (default: as trained)."),
    show: bool = typer.Option(False, "--show", help="Draw the 28x28 input the network saw."),
    raster: Path = typer.Option(None, "--raster", help="Save the output spike raster as PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of tables."),
    precision: Precision = PrecisionOption,
) -> None:
    """Classify your own digit images and show the output spikes per class."""
    import sys

    from .checkpoint import default_checkpoint, load_checkpoint
    from .predict import predict_files
    from .runtime import resolve_device
    from .ui import prediction_table, render_digit, summary_table

    ckpt = load_checkpoint(checkpoint or default_checkpoint())
    stdin = sys.stdin.buffer.read() if "-" in images else None
    dev = resolve_device(device.value)
    model, results = predict_files(ckpt, images, dev, steps, stdin, precision.value)
    if raster:
        from .plots import plot_raster

        plot_raster(results, raster, model.output_is_spikes)
    if as_json:
        print(json.dumps([r.to_dict(model.output_is_spikes) for r in results]))
        return
    out.print(
        f"{ckpt['model']} on {dev.type}, {steps or model.config.steps} time steps, "
        f"{model.precision}",
        style="dim",
        highlight=False,
    )
    for r in results:
        if show:
            out.print(render_digit(r.image))
        out.print(prediction_table(r, model.output_is_spikes))
    if len(results) > 1:
        out.print(summary_table(results))
    if raster:
        out.print(f"spike raster written to {raster}", highlight=False)
