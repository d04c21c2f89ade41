"""tiny: a 784-32-10 spiking MLP with a spiking output layer, written as docs/adding-a-model.md
says a model is written. The tests register it (`SPEC`) only while they need it
(test_tiny_model.py); a model of the package would end with `register_model(ModelSpec(...))`
instead and be imported by snncli/models/__init__.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from snncli.checks import MAX_STEPS, MAX_WIDTH, number, whole
from snncli.models import ModelSpec
from snncli.models.base import SpikingConfig, SpikingNet, recipe_mapping
from snncli.neurons import LeakySubtract
from snncli.recipes import Recipe


@dataclass
class TinyConfig(SpikingConfig):
    """SpikingConfig's fields (norm "batch": batch norm after fc1) and these."""

    steps: int = whole(1, MAX_STEPS, 8)
    beta: float = number(0, 1, 0.8, low_open=True)  # membrane decay per step
    slope: float = number(0, math.inf, 5.0, low_open=True)  # fast-sigmoid surrogate slope
    hidden: int = whole(1, MAX_WIDTH, 32)
    decay_field: ClassVar[str] = "beta"


class Tiny(SpikingNet):
    """784→32→LIF→10→LIF (snnTorch Leaky neurons); the readout is the output spike count."""

    output_is_spikes = True
    output_synapse = "fc2"  # output spike-count ties go to the most input current
    losses = ("rate", "count")

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        c = config
        self.fc1 = nn.Linear(28 * 28, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.num_classes)
        self.lifs = nn.ModuleList(
            LeakySubtract(c.beta, c.threshold, c.slope, c.learn_decay) for _ in range(2)
        )
        self.norm1 = nn.BatchNorm1d(c.hidden) if c.norm == "batch" else nn.Identity()

    def forward_engine(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        # The input is the same image at every step: fc1's current is computed once.
        current1 = self.norm1(self.fc1(x.flatten(1)))
        states = [None] * 2
        record = []
        for _, k in self.chunks(steps):
            s, states[0], _ = self.lifs[0](current1, states[0], steps=k)
            s, states[1], _ = self.lifs[1](self.fc2(s), states[1])
            record.append(s)
        return torch.cat(record)

    def forward_snntorch(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        lifs = self.snntorch_leaky(x.device)
        mems = [lif.init_leaky() for lif in lifs]
        flat = x.flatten(1)
        record = []
        for _ in range(steps):
            spk, mems[0] = lifs[0](self.norm1(self.fc1(flat)), mems[0])
            spk, mems[1] = lifs[1](self.fc2(spk), mems[1])
            record.append(spk)
        return torch.stack(record)

    def loss(self, record, target, smoothing: float = 0.0, kind: str | None = None):
        """rate: cross-entropy of each step's spikes; count: of the spike counts."""
        if kind == "count":
            return F.cross_entropy(record.sum(0), target, label_smoothing=smoothing)
        steps = record.shape[0]
        return F.cross_entropy(
            record.flatten(0, 1), target.repeat(steps), label_smoothing=smoothing
        )

    def synapses(self) -> list[nn.Module]:
        return [self.norm1 if self.config.norm == "batch" else self.fc1, self.fc2]

    def spiking_layers(self) -> list[tuple[str, int]]:
        return [("lif1 (fc1)", self.fc2.out_features), ("lif2 (output)", 0)]

    def dense_macs(self) -> int:
        return self.fc1.in_features * self.fc1.out_features  # computed once: static input


# Recipes, as differences from Recipe's defaults: batch norm and the count loss learn the
# tests' synthetic digits in two epochs; `plain` is the same without batch norm.
SEED = replace(Recipe(), lr=1e-2, batch_size=32, steps=8, surrogate=5.0, init="calibrated",
               norm="batch", loss="count")
PLAIN = replace(SEED, lr=5e-3, norm="none", loss="rate")

SPEC = ModelSpec(
    name="tiny",
    summary="784-32-10 spiking MLP, spiking output (a test model)",
    config_cls=TinyConfig,
    build=Tiny,
    config_from_recipe=recipe_mapping(surrogate="slope"),
    recipes={"seed": SEED, "plain": PLAIN},
    default_recipe="seed",
    normalisation=(0.0, 1.0),
)
