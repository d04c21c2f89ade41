"""The typed Recipe: declared once, checked in one place, built into the CLI; the held-out
validation split."""

import dataclasses
import math

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.data import Split, hold_out
from snncli.errors import DataError
from snncli.models import get_model_spec
from snncli.recipes import SETTINGS, Recipe, RecipeError


def test_every_problem_is_one_message_naming_its_setting():
    bad = Recipe().with_overrides(
        {"epochs": 0, "lr": math.nan, "warmup": 1.0, "augment": "heavy", "steps": 2.5,
         "ema": math.inf, "optimizer": 3}
    )
    assert bad.setting_problems() == [
        "epochs 0 must be from 1 to 100,000",
        "lr nan must be a finite number",
        "optimizer 3 must be one of: adam, adamw",
        "warmup 1.0 must be in [0, 1)",
        "steps 2.5 must be a whole number",
        "augment 'heavy' must be one of: none, light, full, mirror, clothing",
        "ema inf must be a finite number",
    ]
    with pytest.raises(RecipeError) as error:
        bad.check()
    assert error.value.exit_code == 2 and len(str(error.value).splitlines()) == 7
    assert Recipe(loss="count").setting_problems(("mean",)) == [
        "loss 'count' must be one of: mean"
    ]


def test_overrides_replace_given_settings_and_refuse_unknown_ones():
    recipe = Recipe().with_overrides({"epochs": 3, "lr": None})
    assert (recipe.epochs, recipe.lr) == (3, Recipe().lr)  # None: not given
    with pytest.raises(RecipeError, match="unknown recipe setting momentum"):
        Recipe().with_overrides({"momentum": 0.9})


def test_a_stored_recipe_is_checked_and_keeps_defaults_for_later_settings():
    stored = get_model_spec("csnn").recipes["fast"].to_dict()
    assert Recipe.from_dict(stored) == get_model_spec("csnn").recipes["fast"]
    del stored["decay"]  # stored before the setting existed
    assert Recipe.from_dict(stored).decay == "fixed"
    with pytest.raises(RecipeError, match="recipe has an unknown field 'colour'"):
        Recipe.from_dict({**stored, "colour": "red"})
    with pytest.raises(RecipeError, match="recipe must be a mapping of settings, not str"):
        Recipe.from_dict("fast")
    with pytest.raises(RecipeError, match="steps -4 must be from 1 to 10,000"):
        Recipe.from_dict({**stored, "steps": -4})


def test_model_recipes_are_differences_from_their_seed():
    csnn = get_model_spec("csnn").recipes
    assert csnn["best"] == dataclasses.replace(
        csnn["fast"], epochs=40, steps=16, loss="rate", ema=0.999, surrogate=5.0
    )
    assert get_model_spec("mlp").recipes["seed"].loss == "mean"


def test_train_has_one_option_per_recipe_setting():
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in SETTINGS:
        assert "--" + name.replace("_", "-") in result.output
    assert "Recipe settings" in result.output


def split_of(labels: list[int]) -> Split:
    labels = torch.tensor(labels)
    return Split(torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1).expand(-1, 28, 28)
                 .contiguous(), labels)


def test_validation_is_held_out_stratified_disjoint_and_fixed_by_the_seed():
    labels = [d for d in range(10) for _ in range(10 + 2 * d)]  # 190 images, uneven digits
    split = split_of(labels)
    train, val = hold_out(split, 19, seed=3)
    assert len(train) + len(val) == len(split) and len(val) == 19
    ids = lambda s: set(s.images[:, 0, 0].tolist())  # noqa: E731
    assert ids(train).isdisjoint(ids(val)) and ids(train) | ids(val) == set(range(190))
    counts = torch.bincount(val.labels, minlength=10).tolist()
    assert all(abs(c - (10 + 2 * d) / 10) < 1 for d, c in enumerate(counts))  # each its share
    again, other = hold_out(split, 19, seed=3)[1], hold_out(split, 19, seed=4)[1]
    assert ids(again) == ids(val) and ids(other) != ids(val)
    assert len(hold_out(split, 0, seed=3)[1]) == 0
    with pytest.raises(DataError, match="--val-size 190 leaves no training images"):
        hold_out(split, 190, seed=0)
