"""Reliability tables and the temperature fit of snncli.calibration."""

import pytest
import torch

from snncli.calibration import calibrated, fit_temperature, reliability


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(20_000, 10, generator=generator) * 4
    labels = torch.multinomial(torch.softmax(scores / 2.5, dim=1), 1, generator=generator)[:, 0]
    assert fit_temperature(scores, labels) == pytest.approx(2.5, rel=0.05)
    probs = calibrated(scores, 2.5)
    assert torch.allclose(probs.sum(1), torch.ones(len(scores)))
    assert torch.equal(probs.argmax(1), scores.argmax(1))  # monotone: no prediction changes


def test_reliability_counts_each_bin_and_the_confident_ones():
    confidence = torch.tensor([0.3, 0.6, 0.65, 0.92, 0.97, 0.995, 1.0, 1.0])
    correct = torch.tensor([False, True, False, True, False, True, True, True])
    table = reliability(confidence, correct)
    assert [(low, count) for low, _, count, _ in table.rows] == [
        (0.0, 1), (0.5, 2), (0.9, 1), (0.95, 1), (0.99, 3)]
    assert table.rows[1][3] == pytest.approx(0.5)
    assert table.sure_images == 5 and table.sure_accuracy == pytest.approx(0.8)
    assert table.lines()[-1].split()[-1] == "80.00%"
