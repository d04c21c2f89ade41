"""Ranking the classes: spike counts first, count ties broken by the output layer's current."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snncli.checkpoint import build_checkpoint
from snncli.data import Split
from snncli.evaluate import evaluate_model
from snncli.models import create_model
from snncli.models.base import ranking
from snncli.predict import predict_digits

NORM = {"mean": 0.0, "std": 1.0}


def test_ranking_orders_equal_counts_by_current_and_never_reorders_different_counts():
    counts = torch.tensor([[3.0, 5.0, 5.0, 0.0], [4.0, 1.0, 2.0, 4.0]])
    current = torch.tensor([[9.0, 1.0, 2.0, 8.0], [-1.0, 7.0, 9.0, -2.0]])
    ranked = ranking(counts, current)
    assert ranked.argmax(1).tolist() == [2, 0]  # argmax of the counts alone: [1, 0]
    assert torch.equal(ranked.floor(), counts)  # only a fraction below one half is added
    assert ranked.argsort(1, descending=True).tolist() == [[2, 1, 0, 3], [0, 3, 2, 1]]
    assert ranking(counts, None) is counts


def tied_csnn(backend: str):
    """A csnn whose output neurons 3 and 7 both fire at every step, 7 on the larger current."""
    torch.manual_seed(0)
    model = create_model("csnn", steps=5).eval()
    model.backend = backend
    with torch.no_grad():
        model.fc2.weight.zero_()
        model.fc2.bias.zero_()
        model.fc2.bias[3], model.fc2.bias[7] = 5.0, 9.0
    return model


@pytest.mark.parametrize("backend", ["engine", "snntorch"])
def test_a_count_tie_goes_to_the_class_with_more_input_current(backend):
    model = tied_csnn(backend)
    with torch.no_grad():
        found = model.classify(torch.rand(4, 1, 28, 28))
    assert found.record.shape == (5, 4, 10)
    assert found.scores[:, 3].tolist() == found.scores[:, 7].tolist() == [5.0] * 4
    assert found.scores.argmax(1).tolist() == [3] * 4  # what argmax alone would say
    assert found.predicted.tolist() == [7] * 4


def test_evaluation_and_prediction_rank_ties_the_same_way():
    model = tied_csnn("engine")
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    sevens = Split(images, torch.full((6,), 7))
    result = evaluate_model(model, sevens, NORM, torch.device("cpu"))
    assert result.accuracy == 1.0
    ckpt = build_checkpoint("csnn", model, recipe={}, metrics={}, epoch=1)
    ckpt.normalisation = NORM
    _, found = predict_digits(ckpt, [im.numpy() for im in images], torch.device("cpu"))
    assert found.predicted.tolist() == [7] * 6
    assert found.scores[:, 7].tolist() == [5.0] * 6  # the counts themselves are unchanged


def test_an_empty_batch_and_a_non_spiking_readout_are_ranked_by_their_scores():
    csnn = create_model("csnn", steps=3).eval()
    empty = csnn.classify(torch.zeros(0, 1, 28, 28))
    assert empty.ranking.shape == (0, 10)
    mlp = create_model("mlp", steps=3).eval()
    with torch.no_grad():
        found = mlp.classify(torch.rand(2, 1, 28, 28))
    assert torch.equal(found.ranking, found.scores)
    assert np.allclose(found.scores.numpy(), found.record.mean(0).numpy())


def test_the_prediction_table_says_when_a_spike_tie_was_broken(tmp_path):
    from PIL import Image
    from rich.console import Console

    from snncli.predict import predict_files
    from snncli.ui import prediction_table

    model = tied_csnn("engine")
    ckpt = build_checkpoint("csnn", model, recipe={}, metrics={}, epoch=1)
    image = tmp_path / "digit.png"
    Image.fromarray(np.pad(np.full((12, 6), 255, np.uint8), 8)).save(image)
    _, results = predict_files(ckpt, [str(image)], torch.device("cpu"))
    (result,) = list(results)
    assert (result.prediction, result.runner_up) == (7, 3)
    console = Console(record=True, width=120)
    console.print(prediction_table(result, output_is_spikes=True))
    text = " ".join(console.export_text().split())
    assert "7 and 3 fired equally often: the tie goes to the neuron that received more" in text
    result.scores[3] = 4.0
    console.print(prediction_table(result, output_is_spikes=True))
    assert console.export_text().count("fired equally often") == 0  # export_text clears
