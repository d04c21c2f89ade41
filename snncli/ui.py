"""Rich renderings of training progress, evaluations and predictions."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .datasets import DEFAULT_DATASET, DIGITS, get_dataset


def describe_recipe(name: str, r: dict) -> str:
    """The start line's account of a recipe, setting by setting."""
    dataset = r.get("dataset", DEFAULT_DATASET)
    return (
        (f"{get_dataset(dataset).title}, " if dataset != DEFAULT_DATASET else "")
        + f"recipe {name}: {r['epochs']} epoch(s), batch {r['batch_size']}, lr {r['lr']:g} "
        f"({r['schedule']}), {r['steps']} time steps, augmentation {r['augment']}, "
        f"{r['init']} init, "
        + (f"{r['styles']:.0%} style digits, " if r.get("styles") else "")
        + ("batch norm, " if r["norm"] == "batch" else "")
        + ("learned decay, " if r["decay"] == "learned" else "")
        + f"{r['loss']} loss, surrogate {r['surrogate']:g}"
        + (f", weight average (ema {r['ema']:g})" if r["ema"] else "")
    )


class TrainProgress:
    """Training progress: a live bar (loss, running accuracy, speed, ETA) on a terminal; in a
    log (CI, nohup, a cluster job) a plain line at most every `log_every` seconds. Evaluations
    are printed above either."""

    def __init__(self, console: Console, window: int = 50, log_every: float = 30.0,
                 clock=time.monotonic):
        self.console, self.window, self.log_every, self.clock = console, window, log_every, clock
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("acc {task.fields[acc]:6.2%}"),
            TextColumn("{task.fields[speed]:,.0f} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self.task = None
        self.recent: list[tuple[int, int]] = []
        self.images, self.total, self.done_at_start, self.seconds_at_start = 0, 0, 0, 0.0
        self.last_line = float("-inf")
        self.latest: dict = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def handle(self, event: dict) -> None:
        getattr(self, "on_" + event["kind"], lambda e: None)(event)

    def on_start(self, event: dict) -> None:
        images = event["images"]
        held = f", {images['validation']:,} held out for validation" if images["validation"] else ""
        resumed = f"resuming at iteration {event['done']:,}: " if event["done"] else ""
        processes = event.get("processes", 1)
        where = event["device"] if processes == 1 else (
            f"{event['device'].split(':')[0]} in {processes} processes"
        )
        self.console.print(
            f"{resumed}training on [bold]{where}[/] ({event['precision']}) with "
            f"{describe_recipe(event['recipe_name'], event['recipe'])}; "
            f"{images['train']:,} training images{held}",
            highlight=False, soft_wrap=not self.live,
        )
        self.total, self.done_at_start = event["total"], event["done"]
        self.seconds_at_start = event["train_seconds"]  # a resumed run's clock goes on
        self.task = self.progress.add_task(
            "train", total=event["total"], completed=event["done"], epoch=1, loss=float("nan"),
            acc=0.0, speed=0.0,
        )

    def on_step(self, event: dict) -> None:
        n = event["images"]
        self.recent = (self.recent + [(round(event["batch_accuracy"] * n), n)])[-self.window :]
        self.images += n
        acc = sum(c for c, _ in self.recent) / max(1, sum(m for _, m in self.recent))
        speed = self.images / max(1e-9, event["train_seconds"] - self.seconds_at_start)
        self.latest = {**event, "acc": acc, "speed": speed}
        self.progress.update(
            self.task, advance=1, epoch=event["epoch"], loss=event["loss"], acc=acc, speed=speed
        )
        if not self.live and self.clock() - self.last_line >= self.log_every:
            self.log_line()

    def log_line(self) -> None:
        e = self.latest
        if not e:
            return
        done_here = e["iteration"] - self.done_at_start
        seconds = e["train_seconds"] - self.seconds_at_start
        left = (self.total - e["iteration"]) * seconds / max(1, done_here)
        self.console.print(
            f"iteration {e['iteration']:,}/{self.total:,} epoch {e['epoch']}: "
            f"loss {e['loss']:.4f}, accuracy {e['acc']:.2%}, {e['speed']:,.0f} img/s, "
            f"ETA {_duration(left)}",
            highlight=False, soft_wrap=True,  # one line in a log, however long
        )
        self.last_line = self.clock()

    def on_eval(self, event: dict) -> None:
        if not self.live:
            self.log_line()
        mark = "  [green]new best[/]" if event["best"] else ""
        if "unaveraged_test_accuracy" in event:
            unaveraged = 100 * event["unaveraged_test_accuracy"]
            mark += f" (without the weight average {unaveraged:.2f}%)"
        val = f"validation {100 * event['val_accuracy']:.2f}%, " if "val_accuracy" in event else ""
        self.console.print(
            f"epoch {event['epoch']} iteration {event['iteration']}: {val}"
            f"test accuracy [bold]{100 * event['test_accuracy']:.2f}%[/]{mark}",
            highlight=False, soft_wrap=not self.live,
        )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def training_summary(result) -> Table:
    """Test accuracy of the best checkpoint (chosen on validation) and of the last."""
    table = Table(title="training finished", show_header=False)
    if result.selected_on:
        table.add_row(
            "best checkpoint (on validation)",
            f"{100 * result.best['test_accuracy']:.2f}% test, "
            f"{100 * result.best['val_accuracy']:.2f}% validation, epoch {result.best['epoch']}",
        )
    table.add_row("last checkpoint", f"{100 * result.last['test_accuracy']:.2f}% test")
    table.add_row("training time", f"{result.train_seconds:.1f} s")
    table.add_row("best checkpoint" if result.selected_on else "checkpoint", str(result.best_path))
    table.add_row("last checkpoint (resumable)", str(result.last_path))
    table.add_row("metrics", str(result.metrics_path))
    if result.plot_path:
        table.add_row("plot", str(result.plot_path))
    return table


def which_checkpoint(metrics) -> str:
    """What training saved this checkpoint as (its recorded Metrics), in words."""
    role, epoch = metrics.checkpoint, metrics.evaluated_epoch
    at = f" (epoch {epoch})" if epoch is not None else ""
    if role == "best" and metrics.selected_on == "validation":
        return f"best on held-out validation images{at}"
    if role == "best":
        return f"latest evaluated{at}: nothing was held out to choose on"
    if role == "last":
        return f"last{at}, resumable"
    return "best on the test set (an older snncli chose so)"


def bundled_figures_note(precision: str) -> str:
    """Why the bundled weights read three figures: this run's, the one recorded when they were
    bundled, and training's own."""
    return (
        f"The same weights, three figures: this run in {precision}, the one recorded when they "
        "were bundled in fp32 (bf16 moves a few of 10,000 images), and training's own, made in "
        "bf16 before the weights were stored as int8 and, for the bundled csnn, while "
        "spike-count ties still went to the lower digit."
    )


def evaluation_tables(report) -> list:
    """The summary (and, for bundled weights, why its figures differ), the activity tables,
    accuracy per digit and the confusion matrix: to print one after another."""
    path, ckpt, result, sweep_rows = report.path, report.checkpoint, report.result, report.sweep
    folder = getattr(report, "folder", None)
    on = f" on {escape(folder.root)}" if folder else ""
    summary = Table(title=f"Evaluation of {path}{on}", show_header=False)
    summary.add_row("model", ckpt.model)
    summary.add_row("time steps", str(result.steps))
    summary.add_row("precision", result.precision)
    if folder:
        skipped = f" ({len(folder.skipped)} unreadable skipped)" if folder.skipped else ""
        summary.add_row("images", f"{result.total:,}{skipped}, classes {', '.join(folder.found)}")
    else:
        summary.add_row("test images", f"{result.total:,}")
    summary.add_row("accuracy", f"[bold]{100 * result.accuracy:.2f}%[/] ({result.correct:,} right)")
    if folder:
        summary.add_row("mean confidence of the true class",
                        f"{100 * folder.true_confidence:.1f}%")
    trained = ckpt.metrics
    summary.add_row("checkpoint", which_checkpoint(trained))
    figures = ckpt.bundled
    if figures is not None and figures.test_accuracy_after is not None:  # as `snn models`
        summary.add_row("recorded when bundled",
                        f"{100 * figures.test_accuracy_after:.2f}% (fp32, 'snn models')")
    if trained.test_accuracy is not None:  # what training reported: a precision gap shows
        images = f"{trained.test_images:,} images, " if trained.test_images is not None else ""
        summary.add_row(
            "as trained",
            f"{100 * trained.test_accuracy:.2f}% ({images}{trained.precision or 'fp32'})",
        )
    if result.mean_output_spikes is not None:
        summary.add_row("output spikes per image", f"{result.mean_output_spikes:.1f}")
    summary.add_row("speed", f"{result.images_per_second:,.0f} images/s ({result.seconds:.1f} s)")
    if result.synops_per_image is not None:
        summary.add_row("synaptic operations per image", f"{result.synops_per_image:,.0f}")
        summary.add_row("first-layer MACs per image", f"{result.dense_macs_per_image:,}")
    tables = [summary]
    if figures is not None and figures.test_accuracy_after is not None:
        tables.append(Text(bundled_figures_note(result.precision), style="dim"))
    if result.firing_rates:
        rates = Table(title="Firing rate per layer")
        rates.add_column("layer")
        rates.add_column("spikes per neuron per step", justify="right")
        rates.add_column("decay", justify="right")
        for name, rate in result.firing_rates.items():
            rates.add_row(name, f"{rate:.4f}", f"{result.decays[name]:.3f}")
        tables.append(rates)
    if sweep_rows:
        sweep = Table(title="Accuracy vs time steps (same weights)", min_width=40)
        sweep.add_column("steps", justify="right")
        sweep.add_column("accuracy", justify="right")
        for row in sweep_rows:
            sweep.add_row(str(row["steps"]), f"{100 * row['accuracy']:.2f}%")
        tables.append(sweep)

    tables += class_tables(result, ckpt.class_names)
    if folder:
        tables.append(misread_table(folder))
    return tables


def class_tables(result, classes: tuple[str, ...]) -> list[Table]:
    """Accuracy per class and the confusion matrix. Digits head their columns; longer class
    names (Fashion-MNIST's) head the rows, the columns numbered by class."""
    accuracies = ["-" if a is None else f"{100 * a:.1f}" for a in result.per_class]
    if classes == DIGITS:
        per_class = Table(title="Accuracy per digit (%)")
        for d in classes:
            per_class.add_column(d, justify="right")
        per_class.add_row(*accuracies)
        headed, what = list(classes), "digit"
    else:
        per_class = Table(title="Accuracy per class (%)")
        per_class.add_column("class")
        per_class.add_column("accuracy", justify="right")
        for name, accuracy in zip(classes, accuracies, strict=True):
            per_class.add_row(escape(name), accuracy)
        headed, what = [f"{i} {escape(name)}" for i, name in enumerate(classes)], "class"

    confusion = Table(title=f"Confusion matrix (rows: true {what}, columns: predicted)")
    confusion.add_column("true", justify="right", style="bold")
    for d in range(len(result.confusion)):
        confusion.add_column(classes[d] if classes == DIGITS else str(d), justify="right")
    for true, row in enumerate(result.confusion):
        cells = [
            f"[green]{v}[/]" if i == true else (f"[red]{v}[/]" if v else "[dim]·[/]")
            for i, v in enumerate(row)
        ]
        confusion.add_row(headed[true], *cells)
    return [per_class, confusion]


MISREAD_SHOWN = 50  # rows of the misread table (--json lists every one)


def misread_table(folder) -> Table | Text:
    """The files of a labelled folder the checkpoint misread: path, true class, read as,
    confidence."""
    if not folder.misread:
        return Text("no file misread", style="green")
    shown = folder.misread[:MISREAD_SHOWN]
    more = len(folder.misread) - len(shown)
    table = Table(title=f"Misread files ({len(folder.misread)})",
                  caption=f"and {more} more (--json lists all)" if more else None)
    for column in ("file", "true", "read as", "confidence"):
        table.add_column(column, justify="right" if column == "confidence" else "left",
                         overflow="fold" if column == "file" else "ellipsis")
    for row in shown:
        table.add_row(escape(row["path"]), escape(row["true"]), f"[red]{escape(row['read_as'])}[/]",
                      f"{100 * row['confidence']:.0f}%")
    return table


def _bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "·" * (width - filled)


# Beside a prediction whose image's ink was faint and stretched to be read.
LOW_CONTRAST_NOTE = " [yellow](low contrast)[/]"


def prediction_table(result, output_is_spikes: bool) -> Table:
    """Spikes (or mean output) per class with bars; the runner-up named when it is close."""
    label, share = ("spikes", "share") if output_is_spikes else ("mean output", "probability")
    name = escape(Path(result.path).name or result.path)
    named = result.name
    title = f"{name} → [bold green]{escape(named(result.prediction))}[/] "
    title += f"({100 * result.confidence:.0f}%"
    if result.confidence - result.runner_up_confidence < 0.2:
        title += (f", runner-up {escape(named(result.runner_up))} at "
                  f"{100 * result.runner_up_confidence:.0f}%")
    title += ")" + LOW_CONTRAST_NOTE * getattr(result, "low_contrast", False)
    if result.label is not None:
        right = result.label == result.prediction
        title += f", true {escape(named(result.label))}: " + (
            "[green]right[/]" if right else "[red]wrong[/]")
    table = Table(title=title)
    if output_is_spikes and result.scores[result.prediction] == result.scores[result.runner_up]:
        table.caption = (f"{named(result.prediction)} and {named(result.runner_up)} fired "
                         "equally often: the tie goes to the neuron that received more input "
                         "current")
    table.add_column("class" if result.classes != DIGITS else "digit", justify="right")
    table.add_column(label, justify="right")
    table.add_column(share, justify="right")
    table.add_column("")
    for d, (score, fraction) in enumerate(zip(result.scores, result.shares, strict=True)):
        value = f"{int(score)}" if output_is_spikes else f"{score:.3f}"
        style = "bold green" if d == result.prediction else ""
        table.add_row(escape(named(d)), value, f"{100 * fraction:.1f}%", _bar(fraction),
                      style=style)
    return table


def summary_row(item) -> tuple[str, str, str, str]:
    """What the summary table keeps of one input (a Prediction or a Failure): four short
    strings, so that a summary of thousands of images holds none of their arrays."""
    path = escape(item.path)
    if getattr(item, "error", None) is not None:
        return path, "[red]failed[/]", "-", "-"
    named = item.name
    runner_up = f"{escape(named(item.runner_up))} ({100 * item.runner_up_confidence:.0f}%)"
    verdict = "" if item.label is None else (
        " [green]right[/]" if item.label == item.prediction
        else f" [red]wrong, {escape(named(item.label))}[/]"
    )
    return (
        path,
        f"{escape(named(item.prediction))}{verdict}"
        + LOW_CONTRAST_NOTE * getattr(item, "low_contrast", False),
        f"{100 * item.confidence:.0f}%",
        runner_up if item.runner_up_confidence > 0 else "-",
    )


def summary_counts(predicted: int, failed: int = 0, right: int | None = None) -> str:
    """How many were predicted and failed, and the accuracy when the true digits are known
    (`right` of the predicted)."""
    counts = f"{predicted} predicted" + (f", {failed} failed" if failed else "")
    if right is not None and predicted:
        counts += f"; {right} right: accuracy {100 * right / predicted:.1f}%"
    return counts


def summary_table(rows: list[tuple[str, str, str, str]], failed: int = 0,
                  right: int | None = None) -> Table:
    """One row per input in order (`summary_row`); the caption counts the predicted and the
    `failed`, and the accuracy when the true digits are known (`right` of them)."""
    caption = summary_counts(len(rows) - failed, failed, right)
    table = Table(title="Summary", caption=caption)
    for column in ("image", "prediction", "confidence", "runner-up"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def compact_header(name_width: int, class_width: int = 4) -> str:
    """The header of `compact_row`s."""
    return (f"[bold]{'image':<{name_width}}  {'true':>{class_width}}  "
            f"{'pred':>{class_width}}  confidence[/]")


def compact_row(item, name_width: int, class_width: int = 4) -> str:
    """One line for one input (a Prediction or a Failure): its name, the true digit when
    known, the prediction and its confidence, ✓ or ✗, and the runner-up when it came close."""
    name = escape(item.path.ljust(name_width))
    if getattr(item, "error", None) is not None:
        return f"{name}  [red]failed[/]"
    true, predicted = item.name(item.label), item.name(item.prediction)
    line = (f"{name}  {escape(true.rjust(class_width))}  {escape(predicted.rjust(class_width))}"
            f"  {100 * item.confidence:>9.0f}%")
    if item.label is not None:
        line += "  [green]✓[/]" if item.label == item.prediction else "  [red]✗[/]"
    if item.confidence - item.runner_up_confidence < 0.2:
        runner_up = escape(item.name(item.runner_up))
        line += f"  runner-up {runner_up} ({100 * item.runner_up_confidence:.0f}%)"
    return line


def render_digit(image, threshold: int = 80) -> Text:
    """28x28 uint8 as half-block characters, two pixel rows per line; readable without colour,
    and in grey levels where the terminal has colour."""
    blocks = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
    text = Text()
    rows = image.shape[0]
    for y in range(0, rows, 2):
        text.append("│")
        for x in range(image.shape[1]):
            top = int(image[y, x])
            bottom = int(image[y + 1, x]) if y + 1 < rows else 0
            level = max(top, bottom, 60)
            char = blocks[(top > threshold, bottom > threshold)]
            text.append(char, style=f"rgb({level},{level},{level})")
        text.append("│\n")
    return text
