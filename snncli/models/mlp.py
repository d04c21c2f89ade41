"""mlp: a 3-layer spiking MLP with direct encoding and hard-reset LIF neurons."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import MAX_STEPS, MAX_WIDTH, number, whole
from ..neurons import LeakyHardReset, TriangleSpike
from ..recipes import Recipe
from ..registry import ModelSpec, register_model
from .base import SpikingConfig, SpikingNet, recipe_mapping


@dataclass
class MLPConfig(SpikingConfig):
    """SpikingConfig's fields (norm "batch": batch norm after fc1 and fc2) and these."""

    steps: int = whole(1, MAX_STEPS, 6)
    tau: float = number(0, 1, 0.5, low_open=True)  # membrane decay per step
    gamma: float = number(0, math.inf, 1.0, low_open=True)  # triangle surrogate width
    hidden: int = whole(1, MAX_WIDTH, 512)
    decay_field: ClassVar[str] = "tau"


class MLP(SpikingNet):
    """784→512→LIF→512→LIF→10; the readout is the last layer's output averaged over time."""

    output_is_spikes = False
    losses = ("mean",)

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        c = config
        self.fc1 = nn.Linear(28 * 28, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.hidden)
        self.fc3 = nn.Linear(c.hidden, c.num_classes)
        self.lifs = nn.ModuleList(
            LeakyHardReset(c.tau, c.threshold, c.gamma, c.learn_decay) for _ in range(2)
        )
        batch_norm = c.norm == "batch"
        self.norm1 = nn.BatchNorm1d(c.hidden) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm1d(c.hidden) if batch_norm else nn.Identity()

    def forward_engine(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        # Direct encoding repeats the image, so the first layer's current is computed once.
        current1 = self.norm1(self.fc1(x.flatten(1)))
        drop2 = self.spike_dropout(x.shape[0], self.fc2.in_features)
        drop3 = self.spike_dropout(x.shape[0], self.fc3.in_features)
        states = [None] * 2
        record = []
        for _, k in self.chunks(steps):
            s, states[0], _ = self.lifs[0](current1, states[0], steps=k)
            cur = self.fc2(self.dropped(s, drop2))
            s, states[1], _ = self.lifs[1](self.over_time(self.norm2, cur), states[1])
            record.append(self.fc3(self.dropped(s, drop3)))
        return torch.cat(record)

    def forward_snntorch(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        import snntorch

        c = self.config

        def triangle(v_minus_threshold):
            return TriangleSpike.apply(v_minus_threshold, c.gamma)

        # snnTorch's zero reset (delayed, detached) is this model's hard reset.
        lifs = [
            snntorch.Leaky(
                beta=lif.decay(), threshold=c.threshold, spike_grad=triangle,
                reset_mechanism="zero",
            ).to(x.device)
            for lif in self.lifs
        ]
        mems = [lif.init_leaky() for lif in lifs]
        flat = x.flatten(1)
        drop2 = self.spike_dropout(x.shape[0], self.fc2.in_features)
        drop3 = self.spike_dropout(x.shape[0], self.fc3.in_features)
        record = []
        for _ in range(steps):
            spk, mems[0] = lifs[0](self.norm1(self.fc1(flat)), mems[0])
            spk, mems[1] = lifs[1](self.norm2(self.fc2(self.dropped(spk, drop2))), mems[1])
            record.append(self.fc3(self.dropped(spk, drop3)))
        return torch.stack(record)

    def synapses(self) -> list[nn.Module]:
        if self.config.norm == "batch":
            return [self.norm1, self.norm2]
        return [self.fc1, self.fc2]

    def spiking_layers(self) -> list[tuple[str, int]]:
        return [("lif1 (fc1)", self.fc2.out_features), ("lif2 (fc2)", self.fc3.out_features)]

    def dense_macs(self) -> int:
        return self.fc1.in_features * self.fc1.out_features  # computed once: static input

    def loss(self, record, target, smoothing: float = 0.0, kind: str | None = None):
        """Cross-entropy of the output averaged over time."""
        return F.cross_entropy(record.mean(0), target, label_smoothing=smoothing)


# Recipes, as differences from the seed code's (SEED). Figures: README.md, benchmarks/README.md.
SEED = replace(Recipe(), lr=1e-3, steps=6, loss="mean", surrogate=1.0)
# Sturdier on users' own images: full augmentation, one-cycle.
ROBUST = replace(SEED, epochs=3, lr=2e-3, schedule="onecycle", warmup=0.15, augment="full")
# The most accurate on MNIST: light augmentation (MNIST-sized shifts and rotations), label
# smoothing and a long warm-up of a one-cycle schedule.
BEST = replace(SEED, epochs=20, lr=2e-3, schedule="onecycle", warmup=0.3, label_smoothing=0.1,
               augment="light")
# Fine-tuning trained weights on a user's labelled folder mixed with MNIST (snncli/finetune.py):
# `best` cut to 3 epochs at a tenth of its peak rate, with a short warm-up.
FINETUNE = replace(BEST, epochs=3, lr=2e-4, warmup=0.1)


register_model(
    ModelSpec(
        name="mlp",
        summary="3-layer spiking MLP, direct encoding, hard-reset LIF, mean-output readout",
        config_cls=MLPConfig,
        build=MLP,
        config_from_recipe=recipe_mapping(surrogate="gamma"),
        default_recipe="best",
        recipes={"seed": SEED, "robust": ROBUST, "best": BEST, "finetune": FINETUNE},
        normalisation=(0.1307, 0.3081),
    )
)
