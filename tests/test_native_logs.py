"""A data-parallel run's processes keep torch's C++ messages off stderr, where a store
connection retried on a busy machine would print lines of its own beside the one line that
says how the run ended."""

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
