"""wide: a spiking CNN wider and one conv block deeper than the csnn, with its recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import MAX_STEPS, MAX_WIDTH, number, whole
from ..neurons import LeakySubtract
from ..recipes import Recipe
from ..registry import ModelSpec, register_model
from .base import (
    SpikingConfig,
    SpikingNet,
    recipe_mapping,
    spike_output_loss,
    weight_in_hwc_order,
)


@dataclass
class WideConfig(SpikingConfig):
    """SpikingConfig's fields (norm "batch": batch norm after every synaptic layer but the
    output's) and these."""

    steps: int = whole(1, MAX_STEPS, 4)
    beta: float = number(0, 1, 0.5, low_open=True)  # membrane decay per step
    slope: float = number(0, math.inf, 5.0, low_open=True)  # fast-sigmoid surrogate slope
    conv1_channels: int = whole(1, MAX_WIDTH, 64)
    conv2_channels: int = whole(1, MAX_WIDTH, 128)
    conv3_channels: int = whole(1, MAX_WIDTH, 128)
    hidden: int = whole(1, MAX_WIDTH, 256)
    decay_field: ClassVar[str] = "beta"


class WideCSNN(SpikingNet):
    """Conv(1→64)→Pool→LIF→Conv(64→128)→Pool→LIF→Conv(128→128)→LIF→Linear(6272→256)→LIF→
    Linear(256→10)→LIF: the csnn's two conv blocks twice as wide, a third conv block at 7x7,
    and the same spike-count readout.

    With `norm="batch"` each hidden synaptic layer is followed by batch norm over time x
    batch (tdBN), which folds into the layer's weights at inference."""

    output_is_spikes = True
    output_synapse = "fc2"
    losses = ("rate", "count")

    def __init__(self, config: WideConfig):
        super().__init__(config)
        c = config
        self.conv1 = nn.Conv2d(1, c.conv1_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(c.conv1_channels, c.conv2_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(c.conv2_channels, c.conv3_channels, 3, padding=1)
        self.fc1 = nn.Linear(c.conv3_channels * 7 * 7, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.num_classes)
        self.lifs = nn.ModuleList(
            LeakySubtract(c.beta, c.threshold, c.slope, c.learn_decay) for _ in range(5)
        )
        batch_norm = c.norm == "batch"
        self.norm1 = nn.BatchNorm2d(c.conv1_channels) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm2d(c.conv2_channels) if batch_norm else nn.Identity()
        self.norm3 = nn.BatchNorm2d(c.conv3_channels) if batch_norm else nn.Identity()
        self.norm4 = nn.BatchNorm1d(c.hidden) if batch_norm else nn.Identity()

    def forward_engine(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        # Spikes stay channels-last ([.., H, W, C] in memory), the layout oneDNN and cuDNN
        # convolve fastest; each conv runs over (steps of a chunk x batch) at once.
        batch = x.shape[0]
        # The input is the same image at every step: conv1 + pool are computed once.
        current1 = F.max_pool2d(self.norm1(self.conv1(x)), 2).permute(0, 2, 3, 1).contiguous()
        fc1_weight = weight_in_hwc_order(self.fc1.weight, 7, 7)  # reads channels-last spikes
        drop1 = self.spike_dropout(batch, self.fc1.in_features)
        drop2 = self.spike_dropout(batch, self.fc2.in_features)
        states = [None] * 5
        record = []
        for _, k in self.chunks(steps):
            s, states[0], _ = self.lifs[0](current1, states[0], steps=k)
            cur = F.max_pool2d(self._conv(self.conv2, self.norm2, s), 2)
            s, states[1], _ = self.lifs[1](self._over_steps(cur, k, batch), states[1])
            cur = self._conv(self.conv3, self.norm3, s)
            s, states[2], _ = self.lifs[2](self._over_steps(cur, k, batch), states[2])
            cur = F.linear(self.dropped(s.flatten(2), drop1), fc1_weight, self.fc1.bias)
            s, states[3], _ = self.lifs[3](self.over_time(self.norm4, cur), states[3])
            s, states[4], _ = self.lifs[4](self.fc2(self.dropped(s, drop2)), states[4])
            record.append(s)
        return torch.cat(record)

    @staticmethod
    def _conv(conv: nn.Conv2d, norm: nn.Module, spikes: torch.Tensor) -> torch.Tensor:
        """Channels-last spikes [k, B, H, W, C] -> conv -> norm, an NCHW view [k*B, O, H, W]
        of channels-last memory."""
        return norm(conv(spikes.flatten(0, 1).permute(0, 3, 1, 2)))

    @staticmethod
    def _over_steps(current: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
        """[k*B, C, H, W] (channels-last memory) -> [k, B, H, W, C], the LIF layers' input."""
        current = current.permute(0, 2, 3, 1)
        return current.reshape(steps, batch, *current.shape[1:])

    def forward_snntorch(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        lifs = self.snntorch_leaky(x.device)
        mems = [lif.init_leaky() for lif in lifs]
        drop1 = self.spike_dropout(x.shape[0], self.fc1.in_features)
        drop2 = self.spike_dropout(x.shape[0], self.fc2.in_features)
        record = []
        for _ in range(steps):
            spk, mems[0] = lifs[0](F.max_pool2d(self.norm1(self.conv1(x)), 2), mems[0])
            spk, mems[1] = lifs[1](F.max_pool2d(self.norm2(self.conv2(spk)), 2), mems[1])
            spk, mems[2] = lifs[2](self.norm3(self.conv3(spk)), mems[2])
            spk, mems[3] = lifs[3](self.norm4(self.fc1(self.dropped(spk.flatten(1), drop1))),
                                   mems[3])
            spk, mems[4] = lifs[4](self.fc2(self.dropped(spk, drop2)), mems[4])
            record.append(spk)
        return torch.stack(record)

    def synapses(self) -> list[nn.Module]:
        if self.config.norm == "batch":
            return [self.norm1, self.norm2, self.norm3, self.norm4, self.fc2]
        return [self.conv1, self.conv2, self.conv3, self.fc1, self.fc2]

    def spiking_layers(self) -> list[tuple[str, int]]:
        # A conv input spike reaches 3x3 positions in each output channel (borders ignored).
        return [
            ("lif1 (conv1)", self.conv2.out_channels * 9),
            ("lif2 (conv2)", self.conv3.out_channels * 9),
            ("lif3 (conv3)", self.fc1.out_features),
            ("lif4 (fc1)", self.fc2.out_features),
            ("lif5 (output)", 0),
        ]

    def dense_macs(self) -> int:
        return 28 * 28 * self.conv1.out_channels * 9  # computed once: the input is static

    def loss(self, record, target, smoothing: float = 0.0, kind: str | None = None):
        return spike_output_loss(record, target, smoothing, kind)


# Recipes, as differences from the csnn seed code's settings (Recipe's defaults).
# Fashion-MNIST: the csnn's `fast` schedule (batch norm over time x batch, one-cycle with a
# long warm-up, the count loss, which suits few time steps) at 4 time steps with a wide
# surrogate, mirrored images (clothing looks the same mirrored; digits do not) and a weight
# average.
FASHION = replace(Recipe(), dataset="fashion-mnist", epochs=25, batch_size=128, lr=5e-3,
                  schedule="onecycle", warmup=0.3, steps=4, norm="batch", loss="count",
                  surrogate=5.0, augment="mirror", ema=0.999)


register_model(
    ModelSpec(
        name="wide",
        summary="3-conv spiking CNN, twice the csnn's width; for Fashion-MNIST",
        config_cls=WideConfig,
        build=WideCSNN,
        config_from_recipe=recipe_mapping(surrogate="slope"),
        default_recipe="fashion",
        recipes={"fashion": FASHION},
        dataset_recipes={"fashion-mnist": "fashion"},
        normalisation=(0.0, 1.0),
    )
)
