"""The model contract (SpikingNet, SpikingConfig, ModelSpec) is checked where a model is
registered and where one is built, each lack named; the registry registers and unregisters."""

import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import pytest
from torch import nn

from snncli.errors import SnnError
from snncli.models import (
    SpikingConfig,
    SpikingNet,
    get_model_spec,
    list_models,
    register_model,
    unregister_model,
)
from snncli.models.base import recipe_mapping

from tiny_model import SPEC, Tiny, TinyConfig

# The config fields checkpoints store, by model: renaming one makes saved checkpoints (the
# bundled weights among them) unreadable.
STORED_FIELDS = {
    "csnn": {"steps", "threshold", "num_classes", "norm", "learn_decay", "dropout", "beta", "slope",
             "conv1_channels", "conv2_channels", "hidden"},
    "mlp": {"steps", "threshold", "num_classes", "norm", "learn_decay", "dropout", "tau", "gamma",
            "hidden"},
    "wide": {"steps", "threshold", "num_classes", "norm", "learn_decay", "dropout", "beta", "slope",
             "conv1_channels", "conv2_channels", "conv3_channels", "hidden"},
}


@pytest.mark.parametrize("name", sorted(STORED_FIELDS))
def test_configs_share_the_spiking_fields_and_keep_their_stored_names(name):
    spec = get_model_spec(name)
    assert issubclass(spec.config_cls, SpikingConfig) and issubclass(spec.build, SpikingNet)
    assert {f.name for f in dataclasses.fields(spec.config_cls)} == STORED_FIELDS[name]
    assert {f.name for f in dataclasses.fields(SpikingConfig)} <= STORED_FIELDS[name]


def test_each_spec_maps_a_recipes_surrogate_to_its_models_own_field():
    csnn, mlp = get_model_spec("csnn"), get_model_spec("mlp")
    quick = csnn.config_for(dataclasses.replace(csnn.recipes["quick"], decay="learned"))
    assert (quick.slope, quick.steps, quick.norm, quick.learn_decay) == (5.0, 6, "batch", True)
    assert quick.beta == 0.5  # not set by a recipe: the config's default
    seed = mlp.config_for(dataclasses.replace(mlp.recipes["seed"], surrogate=2.5))
    assert (seed.gamma, seed.steps, seed.norm, seed.learn_decay) == (2.5, 6, "none", False)


def test_a_learned_decay_must_start_below_1_in_the_models_own_decay_field():
    assert TinyConfig.problems({"beta": 1.0, "learn_decay": True}) == [
        "beta 1.0 must be below 1 when learn_decay is true"
    ]
    assert TinyConfig.problems({"beta": 1.0}) == []


def test_a_model_registers_and_unregisters():
    before = list_models()
    assert register_model(SPEC) is SPEC
    try:
        assert list_models() == sorted([*before, "tiny"]) and get_model_spec("tiny") is SPEC
        with pytest.raises(ValueError, match="model 'tiny': is already registered"):
            register_model(SPEC)
    finally:
        assert unregister_model("tiny") is SPEC
    assert list_models() == before
    with pytest.raises(SnnError, match="unknown model 'tiny'; choose one of: csnn, mlp, wide$"):
        get_model_spec("tiny")
    with pytest.raises(ValueError, match="model 'tiny' is not registered"):
        unregister_model("tiny")


def refused(spec, message):
    with pytest.raises(ValueError, match=message):
        register_model(spec)
    assert spec.name not in list_models()


def test_a_model_with_methods_left_abstract_is_refused_at_registration():
    class Half(SpikingNet):
        losses = ("rate",)

        def forward_engine(self, x, steps):
            return x

    missing = "dense_macs, forward_snntorch, loss, spiking_layers, synapses"
    refused(dataclasses.replace(SPEC, name="half", build=Half),
            f"model 'half': Half does not implement {missing}")
    with pytest.raises(TypeError, match="abstract"):
        Half(TinyConfig())


def test_a_recipe_that_maps_to_an_invalid_config_is_refused_at_registration():
    typo = dataclasses.replace(SPEC, name="typo", config_from_recipe=recipe_mapping("slop"))
    refused(typo, "model 'typo': recipe 'seed': config has an unknown field 'slop'")
    wrong = dataclasses.replace(SPEC, name="wrong", config_from_recipe=recipe_mapping("beta"))
    refused(wrong, r"recipe 'seed': config beta 5.0 must be in \(0, 1\]")


def test_a_model_without_losses_is_refused_at_registration():
    class Mute(Tiny):
        losses = ()

    refused(dataclasses.replace(SPEC, name="mute", build=Mute), "its model names no losses")


def test_a_built_model_lacking_an_attribute_of_the_contract_names_it():
    class NoLifs(Tiny):
        def __init__(self, config):
            super().__init__(config)
            del self.lifs

    class Short(Tiny):
        def synapses(self):
            return [self.fc1]

    class Elsewhere(Tiny):
        output_synapse = "fc3"

    for cls, message in [
        (NoLifs, "NoLifs breaks the SpikingNet contract: __init__ must set lifs"),
        (Short, "synapses\\(\\) gives 1 layers for 2 in lifs"),
        (Elsewhere, "output_synapse 'fc3' is not a layer of the model"),
    ]:
        with pytest.raises(TypeError, match=message):
            cls(TinyConfig())
    loose = SimpleNamespace(**dataclasses.asdict(TinyConfig()))  # the fields, unchecked
    with pytest.raises(TypeError, match="config is a SimpleNamespace, not a SpikingConfig"):
        Tiny(loose)
    assert isinstance(Tiny(TinyConfig()).lifs, nn.ModuleList)


def test_the_registry_alone_imports_no_model_and_says_so_when_asked_for_one():
    code = (
        "import sys; from snncli.registry import get_model_spec, list_models\n"
        "assert list_models() == [] and 'snncli.models' not in sys.modules\n"
        "try:\n    get_model_spec('csnn')\nexcept Exception as exc:\n    print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "unknown model 'csnn'; choose one of: none registered (import snncli.models)"
    )
