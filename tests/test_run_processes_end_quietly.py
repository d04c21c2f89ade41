"""The processes of a data-parallel run add nothing to stderr beside the one line that says
how the run ended: torch's C++ messages (a store connection retried on a busy machine) are
kept off it, and a stopped or failed process ends without the interpreter's teardown (which
sometimes aborted with a crash report while gloo's threads were still running)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A c10d store client whose server is not there: each connection attempt times out after a
# second and is retried once, as a slow store on a busy machine makes it do.
RETRIED = """
import datetime, socket
{quiet}
import torch.distributed as dist
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
probe.close()
try:
    dist.TCPStore("127.0.0.1", port, is_master=False, timeout=datetime.timedelta(seconds=1))
except Exception as exc:
    print(type(exc).__name__)
"""


def retried_connection(quiet: bool, **env: str) -> subprocess.CompletedProcess:
    code = RETRIED.format(quiet="from snncli.launch import quiet_native_logs; "
                                "quiet_native_logs()" if quiet else "")
    environ = {k: v for k, v in os.environ.items() if k not in ("TORCH_CPP_LOG_LEVEL",
                                                                 "SNN_DEBUG")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**environ, "PYTHONPATH": str(REPO), **env}, timeout=120)


def test_torch_native_messages_are_kept_off_stderr_of_a_run():
    loud = retried_connection(quiet=False)
    assert loud.stdout == "DistNetworkError\n"
    assert "[c10d] TCP client failed to connect/validate" in loud.stderr  # what it would print
    quiet = retried_connection(quiet=True)
    assert quiet.stdout == "DistNetworkError\n" and quiet.stderr == "", quiet.stderr
    debug = retried_connection(quiet=True, SNN_DEBUG="1")  # debugging: everything shown
    assert "[c10d] TCP client failed to connect/validate" in debug.stderr


# A process of a run whose training stops (as at SIGTERM): what it leaves, how it ends.
STOPPED = """
import atexit, sys
from snncli.errors import SnnError
from snncli.launch import _process

class Stopped(SnnError):
    exit_code = 143

def entry(options):
    raise Stopped("SIGTERM received: training stopped at iteration 7 and saved")

atexit.register(lambda: print("interpreter teardown", file=sys.stderr))
print("progress so far", end="")  # buffered output is still written
_process(entry, None, sys.argv[1])
"""


def test_a_stopped_process_reports_in_one_line_and_ends_without_teardown(tmp_path):
    ended = subprocess.run([sys.executable, "-c", STOPPED, str(tmp_path)], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO), "RANK": "1"},
                           timeout=120)
    assert ended.returncode == 143 and ended.stdout == "progress so far"
    assert ended.stderr == ""  # no teardown ran: nothing of it can print, or abort
    assert (tmp_path / "rank1.json").read_text() == (
        '{"message": "SIGTERM received: training stopped at iteration 7 and saved", '
        '"code": 143}')


FINISHED = """
import atexit, sys
from snncli.launch import end_at_exit

atexit.register(lambda: print("interpreter teardown", file=sys.stderr))  # runs after ours
end_at_exit(0)
print("training finished", end="")  # buffered output is still written
"""


def test_a_finished_process_of_a_run_ends_without_teardown():
    ended = subprocess.run([sys.executable, "-c", FINISHED], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert (ended.returncode, ended.stdout, ended.stderr) == (0, "training finished", "")
