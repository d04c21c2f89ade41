"""The `snn` command line: parses options, calls the library, draws Rich output.

Heavy modules (torch and everything that imports it) are imported inside commands so that
`snn --help` stays instant.
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .checks import MAX_STEPS
from .choices import BACKENDS, DEVICES, PRECISIONS
from .datasets import DATASETS
from .errors import SnnError, SnnWarning
from .recipes import recipe_fields


class LogConsole(Console):
    """Rich's console, except that written to a file or pipe (a log, CI, `| tee`) a line of
    text is never wrapped: Rich would wrap it at 80 columns there. Tables keep their layout."""

    def print(self, *objects, soft_wrap: bool | None = None, **kwargs) -> None:
        if soft_wrap is None:
            soft_wrap = not self.is_terminal
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


out = LogConsole()
err = LogConsole(stderr=True)


@contextmanager
def warnings_as_lines():
    """While a command runs, an SnnWarning is one yellow `warning:` line on stderr; any
    other warning is shown as Python shows it."""
    python_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SnnWarning):
            err.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True,
                      highlight=False)
        else:
            python_show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", SnnWarning)
        warnings.showwarning = show
        yield



def print_error(message: str) -> None:
    """One red `error:` line on stderr per line of `message` (one per problem)."""
    for line in message.splitlines() or [""]:
        err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)


class SnnGroup(TyperGroup):
    """Turns every SnnError into red error lines on stderr (one per problem) and its exit code
    (1 unless the error says otherwise), in one place; every other failure becomes one line
    too."""

    def invoke(self, ctx):
        try:
            with warnings_as_lines():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # Typer's own exits and usage errors
            raise
        except SnnError as exc:
            print_error(str(exc))
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None
        except BrokenPipeError:  # the reader stopped reading (| head): end quietly, exit code 1
            _silence_stdout()  # as Rich does when its own output meets a closed pipe
        except OSError as exc:  # the file system said no: disk full, not a folder, permissions
            where = f" ({exc.filename})" if exc.filename else ""
            print_error(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            print_error(_unexpected(exc))
        raise typer.Exit(1)


def _unexpected(exc: Exception) -> str:
    """One line for an exception no check foresaw (SNN_DEBUG=1 raises it: the traceback)."""
    import os

    from .errors import unexpected_message

    message = unexpected_message(exc)
    if os.environ.get("SNN_DEBUG") and message.startswith("internal error"):
        raise exc
    return message


def _silence_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class SnnApp(typer.Typer):
    """The `snn` command. A command that sets `end_at_once` (predict) ends its process as soon
    as its output is flushed, without Python's finalization: after torch is loaded that
    teardown alone takes about 0.4 s, a third of a one-image prediction's wall time. Its
    output is on stdout/stderr and in files already closed; nothing else is pending."""

    end_at_once = False

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            if SnnApp.end_at_once and (exc.code is None or isinstance(exc.code, int)):
                _end_process(exc.code or 0)
            raise


def _end_process(code: int) -> None:
    """Flush stdout and stderr and end the process with `code`, skipping finalization."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: what could be written was
            pass
    os._exit(code)


app = SnnApp(
    cls=SnnGroup,
    help="Train, evaluate and run spiking neural networks on handwritten digits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def package_version() -> str:
    """snncli's version as installed (package metadata), without importing torch."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snncli")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        out.print(f"snncli {package_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Train, evaluate and run spiking neural networks on handwritten digits."""



def finite(value: float | None) -> float | None:
    """Option callback: a number option refuses NaN and infinity (a usage error, exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(value: float | None) -> float | None:
    """Option callback: a finite number above 0 (a usage error otherwise, exit 2)."""
    if finite(value) is not None and not value > 0:
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


MAX_SEED = 2**63 - 1  # torch's generators take seeds up to this


def seed_range(value: int | None) -> int | None:
    """Option callback: a seed torch accepts. Checked here rather than by `max=`, which would
    print the 19-digit bound in the help."""
    if value is not None and value > MAX_SEED:
        raise typer.BadParameter(f"{value} is above the largest seed, {MAX_SEED}")
    return value


# Options shared by several commands, declared once.
CHECKPOINT_HELP = (
    "A checkpoint file, or 'bundled' for the weights that ship with snncli. Default: the "
    "newest checkpoint of a finished run in checkpoints/, else the bundled weights."
)
CheckpointOption = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP)
ModelOption = typer.Option(
    None, "--model", "-m", help="Without a checkpoint file: the newest finished checkpoint of "
    "this model in checkpoints/, else its bundled weights (default: csnn).",
)
DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="SNN_DATA_DIR",
    help="Folder with the data set's four IDX files (gz or raw).",
)
DeviceOption = typer.Option("auto", "--device", help="auto = CUDA, then MPS, then CPU.")
DatasetOption = typer.Option(
    None, "--dataset", help="Without a checkpoint file: the newest finished checkpoint "
    "trained on this data set; with one: refuse it unless trained on this data set.",
)
BackendOption = typer.Option(
    "engine", "--backend", help="engine (fast) or snntorch (the reference step loop)."
)
PrecisionOption = typer.Option(
    "auto",
    "--precision",
    help="auto (bf16 where the device has native bf16, else fp32), fp32, or bf16 (conv/linear "
    "layers in bf16, membranes in fp32).",
)
Device = Literal[DEVICES]
Backend = Literal[BACKENDS]
Precision = Literal[PRECISIONS]
Dataset = Literal[tuple(DATASETS)]
RECIPE_PANEL = "Recipe settings (default: the recipe's)"
COMPACT_AFTER = 3  # `snn predict` of more images: one row each, not a table each


def with_recipe_options(command):
    """Give `command` (which takes **overrides) one `--setting` option per Recipe field, built
    from the field's declaration: its type, choices and help. A new recipe setting needs no
    CLI code."""
    signature = inspect.signature(command)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    types = {"whole": int, "number": float, "text": str}
    for f in recipe_fields():
        kind, *args = f.metadata["check"]
        annotation = Literal[args[0]] if kind == "choice" else types[kind]
        option = typer.Option(
            None, "--" + f.name.replace("_", "-"), help=f.metadata["help"],
            rich_help_panel=RECIPE_PANEL,
        )
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                              annotation=Optional[annotation])  # noqa: UP045 (typer reads it)
        )
    command.__signature__ = signature.replace(parameters=params)
    return command


@app.command("models")
def models_command() -> None:
    """List the registered models and their training recipes."""
    from .models import create_model, get_model_spec, list_models
    from .pretrained import bundled_models

    table = Table(title="Registered models")
    for column in ("name", "parameters", "time steps*", "summary"):
        table.add_column(
            column, justify="right" if column in ("parameters", "time steps*") else "left"
        )
    recipe_tables = []
    for name in list_models():
        spec = get_model_spec(name)
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        steps = spec.recipes[spec.default_recipe].steps
        table.add_row(name, f"{params:,}", str(steps), spec.summary)
        recipe_tables += _recipe_tables(name, spec)
    out.print(table)
    out.print("[dim]* of the default recipe (each recipe's below; a checkpoint runs its own)[/]",
              highlight=False)
    for recipes in recipe_tables:
        out.print(recipes)
    out.print(_bundled_table())
    if bundled_models():
        out.print(f"[dim]{BUNDLED_FIGURES}[/]", highlight=False)


RECIPES_PER_TABLE = 5  # with the setting names, a table fits 80 columns


def _recipe_tables(name: str, spec) -> list[Table]:
    """One column per recipe, one row per setting (narrow however many settings), in tables
    of at most RECIPES_PER_TABLE recipes."""
    from .recipes import SETTINGS

    names = list(spec.recipes)
    parts = [names[i : i + RECIPES_PER_TABLE] for i in range(0, len(names), RECIPES_PER_TABLE)]
    tables = []
    for number, part in enumerate(parts, 1):
        of = f", {number} of {len(parts)}" if len(parts) > 1 else ""
        recipes = Table(title=f"{name} recipes (--recipe NAME; * = default{of})",
                        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        recipes.add_column("setting", no_wrap=True)
        for recipe_name in part:
            default = recipe_name == spec.default_recipe
            recipes.add_column(recipe_name + (" *" if default else ""), no_wrap=True)
        for key in SETTINGS:
            label = "time steps" if key == "steps" else key.replace("_", " ")
            recipes.add_row(label, *(_setting(key, getattr(spec.recipes[r], key)) for r in part))
        tables.append(recipes)
    return tables


def _bundled_table():
    """The weights that ship with snncli (used when no checkpoint is given) and their figures."""
    from .checkpoint import load_checkpoint
    from .pretrained import bundled_models, bundled_path

    names = bundled_models()
    if not names:
        return "[dim]no bundled weights in this install: train a model with 'snn train'[/]"
    table = Table(title="Bundled weights (used when no checkpoint is given, or --checkpoint "
                  "bundled)")
    for column in ("model", "recipe", "time steps", "MNIST test (fp32)", "user digits", "size"):
        table.add_column(column, justify="left" if column in ("model", "recipe") else "right")
    table.add_column("file", overflow="fold")
    for name in names:
        path = bundled_path(name)
        ckpt = load_checkpoint(path)
        figures = ckpt.bundled
        mnist = figures.test_accuracy_after if figures else None
        mnist = ckpt.metrics.test_accuracy if mnist is None else mnist
        users = figures.user_digits_accuracy if figures else None
        table.add_row(name, ckpt.recipe_name or "-", str(ckpt.steps), _percent(mnist),
                      _percent(users), f"{path.stat().st_size / 1e6:.1f} MB", str(path))
    return table


# Why the same bundled weights read differently in `snn models`, `snn evaluate` and its "as
# trained" row.
BUNDLED_FIGURES = (
    "MNIST test is the figure recorded when the weights were bundled (fp32, all 10,000 "
    "images); 'snn evaluate' scores them again in this CPU's precision (bf16 where it has "
    "native bf16, which moves a few of the 10,000 images), and its 'as trained' row is "
    "training's own figure, made in bf16 before the weights were stored as int8 and, for the "
    "bundled csnn, while spike-count ties still went to the lower digit."
)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.2f}%"


def _setting(key: str, value) -> str:
    if key == "ema" and not value:
        return "off"
    if key == "dataset":  # short enough for a column: "fashion" for fashion-mnist
        return value.removesuffix("-mnist") or value
    return f"{value:g}" if isinstance(value, float) else str(value)


@app.command("train")
@with_recipe_options
def train_command(
    ctx: typer.Context,
    model: str = typer.Option(
        "csnn", "--model", "-m", help="Registered model name (see 'snn models')."
    ),
    recipe: str = typer.Option(
        None, "--recipe", "-r", help="Named training recipe (default: the model's default)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, callback=seed_range,
                             help="Random seed of the run (initialisation, batch order, "
                             "held-out images)."),
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
    val_size: int = typer.Option(
        None, "--val-size", min=0, help="Training images held out to choose the best "
        "checkpoint (default 5,000, or a tenth of fewer); 0 turns it off.",
    ),
    eval_every: int = typer.Option(
        None, "--eval-every", min=1, help="Also evaluate every N iterations."
    ),
    eval_epochs: int = typer.Option(
        1, "--eval-epochs", min=1, help="Evaluate after every N epochs (and after the last)."
    ),
    backend: Backend = BackendOption,
    precision: Precision = PrecisionOption,
    save_every: float = typer.Option(
        10.0, "--save-every", callback=positive,
        help="Minutes of training between resumable checkpoints (also saved every epoch).",
    ),
    resume: Path = typer.Option(
        None, "--resume", help="Continue the run saved in this .last.pt checkpoint "
        "(--epochs may extend it).",
    ),
    nproc: int = typer.Option(
        None, "--nproc", min=1, help="Train in N processes on this machine, one model "
        "(data-parallel: each takes its share of every batch; one GPU each on CUDA). For "
        "several machines, start 'snncli train' with torchrun (see README).",
    ),
    data: Path = typer.Option(
        None, "--data", help="Fine-tune on a labelled image folder (one subfolder per class, "
        "DIR/0/ ... DIR/9/), mixed with as many MNIST images; needs --init-from.",
    ),
    init_from: str = typer.Option(
        None, "--init-from", help="Start from these weights: 'bundled' or a checkpoint file "
        "(the model, its settings and classes are its own; recipe default 'finetune').",
    ),
    **overrides,
) -> None:
    """Train on MNIST or Fashion-MNIST, or fine-tune on your own images.

    Ctrl-C saves the run for --resume. --dataset fashion-mnist trains on Fashion-MNIST.
    --data DIR --init-from bundled|CHECKPOINT fine-tunes trained weights on a labelled image
    folder, mixed with MNIST images.

    Writes the best checkpoint (on held-out validation images), the last one (resumable), a
    metrics file and a plot. Ctrl-C or SIGTERM stops after the current iteration and saves
    the run, which --resume continues."""
    if nproc is not None and nproc > 1:
        from .launch import quiet_native_logs

        quiet_native_logs()  # before torch loads: the launcher hosts the run's c10d store
    from .train_setup import TrainOptions

    if resume:
        _refuse_changes_to_a_resumed_run(ctx)
    # Typer passes every recipe option, None when not given: only the given ones override.
    overrides = {name: value for name, value in overrides.items() if value is not None}
    options = TrainOptions(
        model=model, recipe=recipe, overrides=overrides, seed=seed, device=device,
        data_dir=str(data_dir) if data_dir else None, out=str(out_path) if out_path else None,
        train_limit=train_limit, test_limit=test_limit, val_size=val_size,
        eval_every=eval_every, eval_epochs=eval_epochs, backend=backend, precision=precision,
        save_every=save_every, resume=str(resume) if resume else None,
        init_from=init_from, data=str(data) if data else None,
    )
    if init_from and not _given(ctx, "model"):  # the init checkpoint's model
        options.model = None
    if nproc is not None and nproc > 1:
        from .launch import train_in_processes

        train_in_processes(options, nproc, _train_process)
    else:
        _train_process(options)


def _train_process(options) -> None:
    """Train in this process: alone, or as one process of a run torchrun (or --nproc)
    started, of which rank 0 alone shows progress and the summary."""
    from .distributed import finish, launched, rank_from_env
    from .launch import end_at_exit
    from .train import TrainingInterrupted, train
    from .ui import TrainProgress, training_summary

    try:
        if launched() and rank_from_env() != 0:
            train(options)
        else:
            with TrainProgress(out) as progress:
                result = train(options, on_event=progress.handle)
            out.print(training_summary(result))
    except TrainingInterrupted as exc:  # every process stopped at the same iteration
        if launched():
            end_at_exit(exc.exit_code)
        raise
    finish()
    if launched():
        end_at_exit(0)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line (not left at its default)."""
    from typer._click.core import ParameterSource

    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _refuse_changes_to_a_resumed_run(ctx: typer.Context) -> None:
    """Options a resumed run may be given: --resume and --nproc (how many processes), and
    those the library lets a resumed run change (resume.py)."""
    from typer._click.core import ParameterSource

    from .resume import EXTENDABLE_SETTINGS, RESUMABLE_CHANGES

    allowed = {"resume", "nproc", *RESUMABLE_CHANGES, *EXTENDABLE_SETTINGS}
    given = [
        name for name in ctx.params
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        and name not in allowed
    ]
    if given:
        def flag(name: str) -> str:
            return "--" + ("out" if name == "out_path" else name).replace("_", "-")

        may = [*EXTENDABLE_SETTINGS, *(n for n in ctx.params if n in allowed - {"resume"}
                                      and n not in EXTENDABLE_SETTINGS)]
        may = [flag(n) for n in may]
        from .errors import OptionError

        raise OptionError(  # one line, not a usage box: the mistake is the option, not its form
            f"{', '.join(map(flag, given))} would change the saved run; --resume continues it "
            f"as it was (only {', '.join(may[:-1])} and {may[-1]} may be given)"
        )


@app.command("evaluate")
def evaluate_command(
    checkpoint: Path = typer.Argument(None, help=CHECKPOINT_HELP, show_default=False),
    checkpoint_option: Path = typer.Option(
        None, "--checkpoint", "-c", help="The same as the CHECKPOINT argument (as in 'snn "
        "predict').",
    ),
    model: str = ModelOption,
    dataset: Dataset = DatasetOption,
    data_dir: Path = DataDirOption,
    device: Device = DeviceOption,
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N test images."),
    steps: int = typer.Option(
        None, "--steps", min=1, max=MAX_STEPS, help="Time steps (default: as trained)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    backend: Backend = BackendOption,
    precision: Precision = PrecisionOption,
    sweep: str = typer.Option(
        None, "--steps-sweep", help="Also score at these time steps, e.g. 5,10,25,50,100."
    ),
    plot: Path = typer.Option(None, "--plot", help="Write confusion matrix (+ sweep) PNG."),
    data: Path = typer.Option(
        None, "--data", help="Score on a labelled image folder instead: one subfolder per "
        "class (DIR/0/, DIR/7/, ...), images read as 'snn predict' reads them.",
    ),
) -> None:
    """Score a checkpoint on its data set's test images or on your own.

    CHECKPOINT (or --checkpoint) is a checkpoint file or 'bundled'; without one, the newest
    checkpoint of a finished run in checkpoints/, else the bundled weights."""
    from .evaluate import evaluate_checkpoint, parse_steps_list
    from .files import check_writable
    from .ui import evaluation_tables

    if checkpoint and checkpoint_option and checkpoint != checkpoint_option:
        raise typer.BadParameter(
            f"two checkpoints given ({checkpoint} and --checkpoint {checkpoint_option}): give one"
        )
    if plot:
        check_writable(plot, "plot")  # before the work, not after it
    chosen = _choose(checkpoint or checkpoint_option, model, as_json, dataset)
    report = evaluate_checkpoint(
        chosen, data_dir=data_dir, device=device, batch_size=batch_size, limit=limit,
        steps=steps, backend=backend, precision=precision,
        sweep=parse_steps_list(sweep) if sweep else (), dataset=dataset, data=data,
    )
    if as_json:
        summary = {"checkpoint": str(report.path), "model": report.checkpoint.model,
                   **report.result.to_dict(),
                   **(report.folder.to_dict() if report.folder else {})}
        print(json.dumps(summary | ({"steps_sweep": report.sweep} if report.sweep else {})))
    else:
        for i, part in enumerate(evaluation_tables(report)):
            if i and isinstance(part, Table):
                out.print()  # a blank line before each table: its title stands with it
            out.print(part)
    if plot:  # after the results are shown: a failed write loses none of them
        from .plots import plot_evaluation

        title = f"{report.checkpoint.model}: {report.path}"
        plot_evaluation(report.result, report.sweep, plot, title=title)
        if not as_json:
            out.print(f"plot written to {plot}", highlight=False)


@app.command("predict")
def predict_command(
    images: list[str] = typer.Argument(
        None, help="Image files, folders or glob patterns; '-' reads one image from stdin."
    ),
    checkpoint: Path = CheckpointOption,
    model: str = ModelOption,
    dataset: Dataset = DatasetOption,
    sample: int = typer.Option(
        None, "--sample", min=1, help="Classify N random test images (found as for "
        "training: --data-dir, SNN_DATA_DIR or the download cache), each beside its true digit.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, callback=seed_range,
                             help="Which --sample images."),
    data_dir: Path = DataDirOption,
    device: Device = DeviceOption,
    steps: int = typer.Option(
        None, "--steps", min=1, max=MAX_STEPS, help="Time steps (default: as trained)."
    ),
    show: bool = typer.Option(False, "--show", help="Draw the 28x28 input the network saw."),
    raster: Path = typer.Option(None, "--raster", help="Save the output spike raster as PNG."),
    figure: Path = typer.Option(
        None, "--figure", help="Save a PNG with, per image: the image, the 28x28 input, the "
        "output per class and the output over time.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of tables."),
    tables: bool = typer.Option(
        False, "--tables", "--verbose", help=f"A table of the output per class for every "
        f"image (the default up to {COMPACT_AFTER} images; past that, one row each).",
    ),
    precision: Precision = PrecisionOption,
) -> None:
    """Classify your images, or test images with --sample.

    Digits for an MNIST checkpoint, photos of clothing for a Fashion-MNIST one.

    Shows the output spikes per class of each image (a table each for up to 3 images, one
    row each for more; --tables for tables). Every input that cannot be read (or holds no
    digit) is one error line; the others are still classified. Exit code 0 when every input
    was classified, 1 when any failed."""
    import sys

    from .figures import MAX_ROWS
    from .files import check_writable
    from .predict import RASTER_IMAGES, predict_files, predict_samples
    from .runtime import resolve_device
    from .ui import summary_counts, summary_table

    if (sample is None) == (not images):
        raise typer.BadParameter("give image files, folders or patterns, or --sample N (not both)")
    SnnApp.end_at_once = True
    ckpt = _chosen_checkpoint(checkpoint, model, as_json, dataset)
    for target, what in ((raster, "spike raster"), (figure, "figure")):
        if target:
            check_writable(target, what)  # before the work, not after it
    dev = resolve_device(device)
    if sample:
        net, results = predict_samples(ckpt, sample, seed, dev, steps, data_dir, precision)
    else:
        stdin = sys.stdin.buffer.read() if "-" in images else None
        net, results = predict_files(ckpt, images, dev, steps, stdin, precision)
    if not as_json:
        out.print(f"{ckpt.model} on {dev.type}, {steps or net.config.steps} time steps, "
                  f"{net.precision}", style="dim", highlight=False)
    spikes = net.output_is_spikes
    keep = max(RASTER_IMAGES if raster else 0, MAX_ROWS if figure else 0)
    report = _PredictionReport(spikes, as_json, show, keep, tables)
    try:
        report.print_all(results)
    finally:  # now, not at finalization (skipped): the processes reading images stop
        results.close()
    if not as_json and report.compact:
        counts = summary_counts(report.predicted, report.failed, report.right)
        out.print(f"[bold]Summary:[/] {counts}", highlight=False)
    elif not as_json and len(report.rows) > 1:
        out.print(summary_table(report.rows, report.failed, report.right))
    if raster and report.kept:
        _write_raster(report, raster, spikes, as_json)
    if figure and report.kept:
        _write_figure(report, figure, spikes, as_json, originals=not sample)
    if report.failed:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    checkpoint: Path = CheckpointOption,
    model: str = ModelOption,
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (the "
                             "default is reachable from this machine only)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="0: any free port."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
) -> None:
    r"""Draw digits in a web page and watch the network's spikes.

    A local page to draw on or drop an image file on, and its JSON API.
    Needs the serve extra: pip install "snncli\[serve]"."""
    from .choice import choose_checkpoint
    from .serve import require_extra, serve

    require_extra()
    chosen, why = choose_checkpoint(checkpoint, model)
    serve(chosen, why, host, port, open_browser,
          say=lambda text: out.print(escape(text), highlight=False),
          warn=lambda text: warnings.warn(SnnWarning(text), stacklevel=2))


def _chosen_checkpoint(path: Path | None, model: str | None, quiet_stdout: bool,
                       dataset: str | None = None):
    from .checkpoint import load_checkpoint
    from .datasets import check_trained_on

    chosen = _choose(path, model, quiet_stdout, dataset)
    ckpt = load_checkpoint(chosen)
    check_trained_on(ckpt.dataset, dataset, chosen)
    return ckpt


def _choose(path: Path | None, model: str | None, quiet_stdout: bool,
            dataset: str | None = None) -> Path:
    """The checkpoint file to use (snncli/choice.py); unless a file was named, which one and
    why, in one dim line (on stderr when stdout carries JSON)."""
    from .choice import BUNDLED, choose_checkpoint

    chosen, why = choose_checkpoint(path, model, dataset=dataset)
    if path is None or str(path) == BUNDLED:
        (err if quiet_stdout else out).print(f"[dim]{escape(why)}[/]", highlight=False)
    return chosen


def _write_raster(report, raster: Path, spikes: bool, as_json: bool) -> None:
    from .plots import plot_raster
    from .predict import RASTER_IMAGES

    plot_raster(report.kept[:RASTER_IMAGES], raster, spikes)
    if not as_json:
        shown = min(len(report.kept), RASTER_IMAGES)
        first = f" of the first {shown} of {report.predicted} images" if (
            shown < report.predicted
        ) else ""
        out.print(f"spike raster{first} written to {raster}", highlight=False)


def _write_figure(report, figure: Path, spikes: bool, as_json: bool, originals: bool) -> None:
    from .figures import MAX_ROWS, picture_of, plot_predictions

    shown = report.kept[:MAX_ROWS]
    given = [picture_of(p.path) for p in shown] if originals else None
    labels = [p.label for p in shown]
    plot_predictions(shown, figure, spikes, given, labels)
    if not as_json:
        first = f" of the first {len(shown)} images" if len(shown) < report.predicted else ""
        out.print(f"figure{first} written to {figure}", highlight=False)


class _PredictionReport:
    """Prints each prediction as it comes (its table, its row, or an element of one JSON
    array) and each failure as an error line, keeping only what comes after: summary rows and
    the predictions the raster draws. Up to COMPACT_AFTER inputs get a table each; past that,
    one row each (unless `tables`): the first ones wait until it is known which."""

    def __init__(self, spikes: bool, as_json: bool, show: bool, keep: int, tables: bool = False):
        self.spikes, self.as_json, self.show, self.keep = spikes, as_json, show, keep
        self.rows: list[tuple[str, str, str, str]] = []
        self.kept: list = []
        self.failed = self.predicted = 0
        self.right: int | None = None  # of the predictions whose true digit is known
        self.tables = tables or as_json  # a table each, asked for (or decided at the end)
        self.compact = False
        self.waiting: list = []  # the first inputs, until they are known to be few or many
        self.name_width, self.header_shown = 0, False
        self.class_width = 4  # "true" and "pred" columns: the longest class name

    def print_all(self, results) -> None:
        import sys

        if self.as_json:
            sys.stdout.write("[")
        try:
            for item in results:
                self.add(item)
        finally:  # an interruption still leaves valid JSON of what was done
            if self.as_json:
                sys.stdout.write("]\n")
                sys.stdout.flush()
            else:
                self.tables = not self.compact
                self._show_waiting()

    def add(self, item) -> None:
        import sys

        from .predict import Failure
        from .ui import summary_row

        if self.as_json:
            first = self.predicted + self.failed == 0
            sys.stdout.write(("" if first else ", ") + json.dumps(item.to_dict(self.spikes)))
        else:
            self.rows.append(summary_row(item))
        if isinstance(item, Failure):
            self.failed += 1
            print_error(item.error)
        else:
            self.predicted += 1
            if item.label is not None:
                self.right = (self.right or 0) + (item.label == item.prediction)
            if len(self.kept) < self.keep:
                self.kept.append(item)
        if self.as_json:
            return
        self.waiting.append(item)
        if not self.tables and not self.compact and len(self.waiting) > COMPACT_AFTER:
            self.compact = True
            self.name_width = min(40, max(len(i.path) for i in self.waiting))
            classes = next((i.classes for i in self.waiting if hasattr(i, "classes")), ())
            self.class_width = max([4, *map(len, classes)])
        if self.tables or self.compact:
            self._show_waiting()

    def _show_waiting(self) -> None:
        from .predict import Failure
        from .ui import compact_header, compact_row, prediction_table, render_digit

        if self.compact and self.waiting and not self.header_shown:
            out.print(compact_header(self.name_width, self.class_width), highlight=False)
            self.header_shown = True
        for item in self.waiting:
            if self.show and not isinstance(item, Failure):
                out.print(render_digit(item.image))
            if self.compact:
                out.print(compact_row(item, self.name_width, self.class_width), highlight=False)
            elif not isinstance(item, Failure):
                out.print(prediction_table(item, self.spikes))
        self.waiting.clear()
