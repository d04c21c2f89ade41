"""`snn train --nproc N`: N processes of one data-parallel run on this machine, started by
torch.distributed's elastic launcher (the engine torchrun runs), never by hand.

Each process gets the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT; rendezvous on a free local port) and joins the run as under torchrun. When one
process fails, the launcher stops the others; this module then says what happened in one line,
naming the last resumable checkpoint.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .errors import SnnError, one_line, unexpected_message


class LaunchError(SnnError):
    """A process of the run failed (or the launcher was stopped); `exit_code` is its code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


NATIVE_LOG_LEVEL = "TORCH_CPP_LOG_LEVEL"  # read by torch's C++ code once, as torch loads


def quiet_native_logs() -> None:
    """Keep torch's C++ code (the c10d store, gloo) from printing to stderr in this process and
    in the processes it starts from now on: call before torch is imported. Its messages bypass
    Python's logging: on a busy machine a store connection that times out and is retried
    prints an error and a warning line, though the run goes on, beside the one line that says
    how a run ended. Failures still reach Python as exceptions, which that line reports.
    TORCH_CPP_LOG_LEVEL set by the user, or SNN_DEBUG, leaves them printed."""
    if not os.environ.get("SNN_DEBUG"):
        os.environ.setdefault(NATIVE_LOG_LEVEL, "FATAL")


def train_in_processes(options, nproc: int, entry: Callable) -> None:
    """Run `entry(options)` (which trains: `snncli.train.train` with whatever shows its
    progress) in `nproc` local processes of one run. Returns when all finished; raises a
    LaunchError (one line) when any failed or the launcher got SIGINT/SIGTERM."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _check_before_launch(options, nproc)
    quiet_native_logs()  # for the processes started below (this one may have loaded torch)
    # Each process computes on its share of the cores (torchrun would set 1 thread).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="snn-run-") as folder:
        config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"snn-{uuid.uuid4().hex}",
            rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
            start_method="spawn", logs_specs=DefaultLogsSpecs(log_dir=str(Path(folder, "logs"))),
        )
        try:
            with _quiet_torch_logs():
                elastic_launch(config, _process)(entry, options, folder)
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            raise _failed(folder, rank, failure.exitcode, options, nproc, started) from None
        except SignalException as exc:
            raise _stopped(folder, exc.sigval, options, nproc, started) from None


def _check_before_launch(options, nproc: int) -> None:
    """What every process would refuse, said once before any starts."""
    from .distributed import launched, machine_limit
    from .recipes import Recipe
    from .resume import check_process_count, resumed_options, saved_training_state
    from .runtime import resolve_device
    from .train_setup import resolve_recipe

    if launched():
        raise SnnError("--nproc starts processes of its own: under torchrun, leave it out "
                       "(torchrun's --nproc-per-node says how many)")
    if options.resume:  # the saved run's settings, on as many processes as it ran
        path = Path(options.resume)
        state = saved_training_state(path)
        check_process_count(path, state, nproc)
        options = resumed_options(state["options"], options)
        recipe = Recipe.from_dict(state["recipe"])
    else:
        recipe = resolve_recipe(options)[1]
    device = resolve_device(options.device)
    if device.type not in ("cpu", "cuda"):
        raise SnnError(f"--nproc runs on CUDA GPUs or CPUs, not on {device.type}; pass "
                       "--device cuda or --device cpu")
    limit, what = machine_limit(device)
    if nproc > limit:
        raise SnnError(f"--nproc {nproc} is more processes than this machine's {what}: use at "
                       f"most {limit}")
    if nproc > recipe.batch_size:
        raise SnnError(f"--nproc {nproc} is more processes than a batch of {recipe.batch_size} "
                       f"images can be shared among (--batch-size): use at most "
                       f"{recipe.batch_size}")


def _process(entry: Callable, options, folder: str) -> None:
    """One process of the run. A failure is left in `folder` as one line for the launcher
    (which prints it) and ends the process with its exit code at once (`_end`)."""
    try:
        entry(options)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line
        message, code = _describe(exc)
        report = {"message": message, "code": code}
        Path(folder, f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(report))
        _end(code)


def end_at_exit(code: int) -> None:
    """Have this process of a data-parallel run end, when it exits, with `code` and without
    the interpreter's teardown (`_end`): for a process that finished its part (it still
    returns, so that the launcher or torchrun hears of it first)."""
    atexit.register(_end, code)


def _end(code: int) -> None:
    """End this process of a data-parallel run now, its output flushed, without the
    interpreter's teardown: gloo's threads are still running then (DistributedDataParallel
    keeps its process group alive past destroy_process_group), and tearing down the C++
    objects under them sometimes aborts the process ("terminate called without an active
    exception", then a crash report on stderr), more often the busier the machine. Every
    file the run writes is complete by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing more to say there
            pass
    os._exit(code)


def _describe(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, SnnError):
        return str(exc), getattr(exc, "exit_code", 1)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({one_line(exc.filename)})" if exc.filename else ""
        return f"{exc.strerror}{where}", 1
    return unexpected_message(exc), 1


def _report(folder: str, rank: int) -> tuple[str, int] | None:
    path = Path(folder, f"rank{rank}.json")
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return report["message"], report["code"]


def _failed(folder: str, rank: int, exitcode: int, options, nproc: int,
            started: float) -> LaunchError:
    """What the first process to fail left, or how it ended; and how to continue."""
    report = _report(folder, rank)
    if report is None:
        if exitcode < 0:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        else:
            how = f"exited with code {exitcode}"
        report = (f"training process {rank} of {nproc} {how}; the others were stopped", 1)
    message, code = report
    return LaunchError(message + _resume_hint(message, options, nproc, started), code)


def _stopped(folder: str, signum: int, options, nproc: int, started: float) -> LaunchError:
    """The launcher was sent `signum` and forwarded it: what rank 0 said when it stopped (it
    saved the run), or that the run stopped."""
    report = _report(folder, 0)
    message = report[0] if report else f"{signal.Signals(signum).name} received: training stopped"
    return LaunchError(message + _resume_hint(message, options, nproc, started), 128 + signum)


def _resume_hint(message: str, options, nproc: int, started: float) -> str:
    """How to continue from the last resumable checkpoint (unless `message` says it)."""
    from .resume import resume_command
    from .train_setup import RunFiles, run_dataset

    if "snn train --resume" in message:
        return ""
    if options.resume:
        last = Path(options.resume)
    else:
        last = RunFiles.of_model(options.model, options.out, run_dataset(options)).last
        if not (last.is_file() and last.stat().st_mtime >= started):
            return "; nothing resumable was saved"
    return f"; the last resumable checkpoint is {last}: {resume_command(last, nproc)}"


@contextmanager
def _quiet_torch_logs():
    """The launcher's log lines (processes started, signals sent, failures with tracebacks)
    stay unprinted while it runs: what happened is said in one line. Torch gives its loggers
    handlers of their own, so logging is switched off in this process (the workers are
    others)."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
