"""Rich renderings of training progress, evaluations and predictions."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
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


class TrainProgress:
    """Live bar for training: loss, running accuracy, speed, ETA; evaluations printed above."""

    def __init__(self, console: Console, window: int = 50):
        self.console = console
        self.window = window
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
        )
        self.task = None
        self.recent: list[tuple[int, int]] = []
        self.images = 0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def handle(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            r = event["recipe"]
            self.console.print(
                f"training on [bold]{event['device']}[/] with recipe {r['recipe']}: "
                f"{r['epochs']} epoch(s), batch {r['batch_size']}, lr {r['lr']:g} "
                f"({r['schedule']}), {r['steps']} time steps, augmentation {r['augment']}, "
                f"{r['init']} init, "
                + ("batch norm, " if r["norm"] == "batch" else "")
                + ("learned decay, " if r["decay"] == "learned" else "")
                + f"{r['loss']} loss, surrogate {r['surrogate']:g}, "
                + (f"weight average (ema {r['ema']:g}), " if r["ema"] else "")
                + event["precision"],
                highlight=False,
            )
            self.task = self.progress.add_task(
                "train", total=event["total"], epoch=1, loss=float("nan"), acc=0.0, speed=0.0
            )
        elif kind == "step":
            n = event["images"]
            self.recent = (self.recent + [(round(event["batch_accuracy"] * n), n)])[-self.window :]
            self.images += n
            acc = sum(c for c, _ in self.recent) / max(1, sum(m for _, m in self.recent))
            speed = self.images / max(1e-9, event["train_seconds"])
            self.progress.update(
                self.task, advance=1, epoch=event["epoch"], loss=event["loss"], acc=acc, speed=speed
            )
        elif kind == "eval":
            mark = "  [green]new best[/]" if event["best"] else ""
            if "unaveraged_test_accuracy" in event:
                unaveraged = 100 * event["unaveraged_test_accuracy"]
                mark += f" (without the weight average {unaveraged:.2f}%)"
            self.console.print(
                f"epoch {event['epoch']} iteration {event['iteration']}: "
                f"test accuracy [bold]{100 * event['test_accuracy']:.2f}%[/]{mark}",
                highlight=False,
            )


def evaluation_tables(path, ckpt: dict, result, sweep_rows=()) -> list[Table]:
    summary = Table(title=f"Evaluation of {path}", show_header=False)
    summary.add_row("model", ckpt["model"])
    summary.add_row("time steps", str(result.steps))
    summary.add_row("precision", result.precision)
    summary.add_row("test images", f"{result.total:,}")
    summary.add_row("accuracy", f"[bold]{100 * result.accuracy:.2f}%[/] ({result.correct:,} right)")
    trained = ckpt.get("metrics", {})
    if "test_accuracy" in trained:  # what training reported, so a precision gap is visible
        summary.add_row(
            "as trained",
            f"{100 * trained['test_accuracy']:.2f}% ({trained['test_images']:,} images, "
            f"{trained.get('precision', 'fp32')})",  # recorded since --precision existed
        )
    if result.mean_output_spikes is not None:
        summary.add_row("output spikes per image", f"{result.mean_output_spikes:.1f}")
    summary.add_row("speed", f"{result.images_per_second:,.0f} images/s ({result.seconds:.1f} s)")
    if result.synops_per_image is not None:
        summary.add_row("synaptic operations per image", f"{result.synops_per_image:,.0f}")
        summary.add_row("first-layer MACs per image", f"{result.dense_macs_per_image:,}")
    tables = [summary]
    if result.firing_rates:
        rates = Table(
            title="Firing rate per layer", caption="spikes per neuron per step", min_width=34
        )
        rates.add_column("layer")
        rates.add_column("rate", justify="right")
        rates.add_column("decay", justify="right")
        for name, rate in result.firing_rates.items():
            rates.add_row(name, f"{rate:.4f}", f"{result.decays[name]:.3f}")
        tables.append(rates)
    if sweep_rows:
        sweep = Table(
            title="Accuracy vs time steps", caption="same weights, re-simulated", min_width=34
        )
        sweep.add_column("steps", justify="right")
        sweep.add_column("accuracy", justify="right")
        for row in sweep_rows:
            sweep.add_row(str(row["steps"]), f"{100 * row['accuracy']:.2f}%")
        tables.append(sweep)

    per_class = Table(title="Accuracy per digit (%)")
    for d in range(len(result.per_class)):
        per_class.add_column(str(d), justify="right")
    per_class.add_row(*("-" if a is None else f"{100 * a:.1f}" for a in result.per_class))

    confusion = Table(title="Confusion matrix (rows: true digit, columns: predicted)")
    confusion.add_column("true", justify="right", style="bold")
    for d in range(len(result.confusion)):
        confusion.add_column(str(d), justify="right")
    for true, row in enumerate(result.confusion):
        cells = [
            f"[green]{v}[/]" if i == true else (f"[red]{v}[/]" if v else "[dim]·[/]")
            for i, v in enumerate(row)
        ]
        confusion.add_row(str(true), *cells)
    return tables + [per_class, confusion]


def _bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "·" * (width - filled)


def prediction_table(result, output_is_spikes: bool) -> Table:
    """Spikes (or mean output) per class with bars; the runner-up named when it is close."""
    label, share = ("spikes", "share") if output_is_spikes else ("mean output", "probability")
    name = Path(result.path).name or result.path
    title = f"{name} → [bold green]{result.prediction}[/] ({100 * result.confidence:.0f}%"
    if result.confidence - result.runner_up_confidence < 0.2:
        title += f", runner-up {result.runner_up} at {100 * result.runner_up_confidence:.0f}%"
    table = Table(title=title + ")")
    table.add_column("digit", justify="right")
    table.add_column(label, justify="right")
    table.add_column(share, justify="right")
    table.add_column("")
    for d, (score, fraction) in enumerate(zip(result.scores, result.shares, strict=True)):
        value = f"{int(score)}" if output_is_spikes else f"{score:.3f}"
        style = "bold green" if d == result.prediction else ""
        table.add_row(str(d), value, f"{100 * fraction:.1f}%", _bar(fraction), style=style)
    return table


def summary_table(results) -> Table:
    table = Table(title="Summary")
    for column in ("image", "prediction", "confidence", "runner-up"):
        table.add_column(column)
    for r in results:
        runner_up = f"{r.runner_up} ({100 * r.runner_up_confidence:.0f}%)"
        table.add_row(
            r.path,
            str(r.prediction),
            f"{100 * r.confidence:.0f}%",
            runner_up if r.runner_up_confidence > 0 else "-",
        )
    return table


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
