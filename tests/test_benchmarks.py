"""The benchmark scripts still run against the library (a few iterations on tiny data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_engine_measures_one_configuration(tiny_mnist):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_engine.py"), "--data-dir", str(tiny_mnist),
         "--device", "cpu", "--iters", "1", "--warmup", "0", "--subset", "20",
         "--one", "measure,csnn,quick,2,engine,fp32"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["model"] == "csnn" and row["steps"] == 2 and row["seconds_per_iteration"] > 0
    assert row["subset_accuracy"] is None  # quick is timed for training only


def test_bench_fashion_trains_one_run(tiny_mnist):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_fashion.py"), "--data-dir", str(tiny_mnist),
         "--one", "mlp,seed,0"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["epochs"] == 1 and 0 < row["accuracy"] <= 1 and row["train_seconds"] > 0
