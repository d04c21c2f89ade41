"""How often `snn predict`'s confident predictions are right: the reliability table
(confidence bins vs accuracy) of each checkpoint on MNIST test, with its own confidence (share
of output spikes; the mlp's softmax) and with softmax(scores / T), T fitted on held-out
training images (the 5,000 the checkpoint's run held out for validation: never trained on,
never the test set; `snncli.calibration.held_out_split`).

Usage:
  .venv/bin/python benchmarks/calibrate.py [CHECKPOINT ...] --data-dir ../shared/data/mnist
(default: the bundled csnn and mlp weights)
"""

from __future__ import annotations

import argparse
import time

from snncli.calibration import (
    confidence_of,
    fit_temperature,
    held_out_split,
    reliability,
    scores_of,
)
from snncli.checkpoint import load_checkpoint
from snncli.data import load_split
from snncli.pretrained import bundled_models, bundled_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    args = parser.parse_args()
    paths = args.checkpoints or [str(bundled_path(m)) for m in bundled_models()]
    test = load_split("test", args.data_dir)
    for path in paths:
        start = time.perf_counter()
        ckpt = load_checkpoint(path)
        held = held_out_split(ckpt, args.data_dir)
        model, scores, predicted = scores_of(ckpt, held)
        temperature = fit_temperature(scores, held.labels)
        model, test_scores, test_predicted = scores_of(ckpt, test)
        correct = test_predicted == test.labels
        print(f"{path} ({ckpt.model}, {model.precision}): test accuracy "
              f"{100 * correct.double().mean():.2f}%, "
              f"temperature {temperature:.4f} fitted on {len(held)} held-out training images "
              f"({time.perf_counter() - start:.0f} s)")
        for name, t in (("predict's confidence (share of output spikes; mlp: softmax)", None),
                        (f"softmax(scores / {temperature:.3f}), the fitted temperature",
                         temperature)):
            table = reliability(confidence_of(model, test_scores, test_predicted, t), correct)
            print(f"  MNIST test, {name}:")
            print("\n".join(f"    {line}" for line in table.lines()))


if __name__ == "__main__":
    main()
