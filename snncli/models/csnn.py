"""csnn: the snnTorch tutorial's convolutional SNN, with its recipes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .. import spike_conv, spike_linear
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
class CSNNConfig(SpikingConfig):
    """SpikingConfig's fields (norm "batch": batch norm after conv1, conv2 and fc1) and these."""

    steps: int = whole(1, MAX_STEPS, 100)
    beta: float = number(0, 1, 0.5, low_open=True)  # membrane decay per step
    slope: float = number(0, math.inf, 25.0, low_open=True)  # fast-sigmoid surrogate slope
    conv1_channels: int = whole(1, MAX_WIDTH, 32)
    conv2_channels: int = whole(1, MAX_WIDTH, 64)
    hidden: int = whole(1, MAX_WIDTH, 512)
    decay_field: ClassVar[str] = "beta"


class CSNN(SpikingNet):
    """Conv(1→32)→Pool→LIF→Conv(32→64)→Pool→LIF→Linear(3136→512)→LIF→Linear(512→10)→LIF.

    With `norm="batch"` each hidden synaptic layer is followed by batch norm over time x batch
    (as in tdBN, Zheng et al. 2021; in training the statistics span all time steps on every
    device). It keeps every layer's input current at a firing scale throughout training. At
    inference it is a fixed per-channel affine map that folds into the layer's weights, so the
    network and its synaptic operations are those of the plain csnn.
    """

    output_is_spikes = True
    output_synapse = "fc2"
    losses = ("rate", "count")
    # conv2 and fc1 see only spikes, the 0/1 output of a LIF layer: the fast CPU kernels below
    # (spike_conv, spike_linear) are right only for inputs of 0 and 1.
    lookup_conv = True  # conv2 as a table lookup where `spike_conv.usable` (CPU, fp32)
    # fc1 as sums of the weight rows of the spikes that fired, where `spike_linear` finds the
    # spikes sparse enough (CPU, fp32)
    spike_rows = True

    def __init__(self, config: CSNNConfig):
        super().__init__(config)
        c = config
        self.conv1 = nn.Conv2d(1, c.conv1_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(c.conv1_channels, c.conv2_channels, 3, padding=1)
        self.fc1 = nn.Linear(c.conv2_channels * 7 * 7, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.num_classes)
        self.lifs = nn.ModuleList(
            LeakySubtract(c.beta, c.threshold, c.slope, c.learn_decay) for _ in range(4)
        )
        batch_norm = c.norm == "batch"
        self.norm1 = nn.BatchNorm2d(c.conv1_channels) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm2d(c.conv2_channels) if batch_norm else nn.Identity()
        self.norm3 = nn.BatchNorm1d(c.hidden) if batch_norm else nn.Identity()

    def forward_engine(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        # Activations stay channels-last ([.., H, W, C] in memory), the layout oneDNN and cuDNN
        # convolve and pool fastest (2-5x over NCHW on a CPU), so no layout copies are made;
        # fc1's weight is viewed in the same (h, w, c) order instead.
        batch = x.shape[0]
        # The input is the same image at every step, so conv1 + pool are computed once and
        # lif1 reads that one current at each step of a chunk. It is made channels-last here
        # (the one-channel input leaves the conv's output NCHW).
        current1 = F.max_pool2d(self.norm1(self.conv1(x)), 2).permute(0, 2, 3, 1).contiguous()
        drop1 = self.spike_dropout(batch, self.fc1.in_features)
        drop2 = self.spike_dropout(batch, self.fc2.in_features)
        # Dropped spikes are scaled, no longer 0 or 1: rows cannot be summed then.
        summed = self.spike_rows and drop1 is None and spike_linear.usable(current1)
        fc1_weight, fc1_table = self._fc1_weight(summed)
        # conv2 sees only spikes: on a CPU in fp32 it runs as a table lookup (spike_conv).
        conv2_table = None
        if self.lookup_conv and spike_conv.usable(current1, self.conv2):
            conv2_table = spike_conv.lookup_table(self.conv2.weight, self.conv2.bias)
        states = [None] * 4
        record = []
        for _, k in self.chunks(steps):
            s, states[0], _ = self.lifs[0](current1, states[0], steps=k)
            cur = self._conv2_pooled(s.flatten(0, 1), conv2_table).permute(0, 2, 3, 1)
            s, states[1], _ = self.lifs[1](cur.reshape(k, batch, *cur.shape[1:]), states[1])
            cur = self._fc1(self.dropped(s.flatten(2), drop1), fc1_weight, fc1_table)
            s, states[2], _ = self.lifs[2](self.over_time(self.norm3, cur), states[2])
            s, states[3], _ = self.lifs[3](self.fc2(self.dropped(s, drop2)), states[3])
            record.append(s)
        return torch.cat(record)

    def _fc1_weight(self, summed: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """fc1's weight [out, in] with its inputs in (h, w, c) order, the order of the
        channels-last spikes that reach it; and, if rows of it are to be `summed`
        (spike_linear), the same weight as a contiguous [in, out] table (the weight is then a
        view of it, which fp32 products take as fast)."""
        if not summed:
            return weight_in_hwc_order(self.fc1.weight, 7, 7), None
        out_features = self.fc1.out_features
        table = self.fc1.weight.view(out_features, -1, 7, 7).permute(2, 3, 1, 0)
        table = table.reshape(-1, out_features)
        return table.t(), table

    def _fc1(self, spikes: torch.Tensor, weight: torch.Tensor,
             table: torch.Tensor | None) -> torch.Tensor:
        """Spikes [k, B, in] -> fc1's current [k, B, out]."""
        flat = spikes.reshape(-1, spikes.shape[-1])
        current = spike_linear.spike_linear(flat, weight, self.fc1.bias, table)
        return current.view(*spikes.shape[:-1], weight.shape[0])  # B may be 0

    def _conv2_pooled(self, spikes: torch.Tensor, table: torch.Tensor | None) -> torch.Tensor:
        """Channels-last spikes [steps x images, H, W, C] -> conv2 -> norm2 -> 2x2 max pool, as
        an NCHW view of channels-last memory. With a lookup `table` conv2 runs as
        `spike_conv.spike_conv3x3`. With `pool_before_bias` and no norm, the bias is added after
        pooling: max(x + b) = max(x) + b exactly (rounding is monotone), and cuDNN adds a bias
        in a pass of its own over the conv output, which is 4x the size of the pooled one."""
        if table is not None:
            conv = spike_conv.spike_conv3x3(spikes, self.conv2, table).permute(0, 3, 1, 2)
            return F.max_pool2d(self.norm2(conv), 2)
        spikes = spikes.permute(0, 3, 1, 2)  # NCHW view of channels-last memory
        if self.pool_before_bias and self.config.norm == "none":
            pooled = F.max_pool2d(F.conv2d(spikes, self.conv2.weight, None, padding=1), 2)
            return pooled + self.conv2.bias.view(1, -1, 1, 1).to(pooled.dtype)
        return F.max_pool2d(self.norm2(self.conv2(spikes)), 2)

    def forward_snntorch(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        lifs = self.snntorch_leaky(x.device)
        mems = [lif.init_leaky() for lif in lifs]
        drop1 = self.spike_dropout(x.shape[0], self.fc1.in_features)
        drop2 = self.spike_dropout(x.shape[0], self.fc2.in_features)
        record = []
        for _ in range(steps):
            spk, mems[0] = lifs[0](F.max_pool2d(self.norm1(self.conv1(x)), 2), mems[0])
            spk, mems[1] = lifs[1](F.max_pool2d(self.norm2(self.conv2(spk)), 2), mems[1])
            spk, mems[2] = lifs[2](self.norm3(self.fc1(self.dropped(spk.flatten(1), drop1))),
                                   mems[2])
            spk, mems[3] = lifs[3](self.fc2(self.dropped(spk, drop2)), mems[3])
            record.append(spk)
        return torch.stack(record)

    def synapses(self) -> list[nn.Module]:
        if self.config.norm == "batch":
            return [self.norm1, self.norm2, self.norm3, self.fc2]
        return [self.conv1, self.conv2, self.fc1, self.fc2]

    def spiking_layers(self) -> list[tuple[str, int]]:
        # A conv2 input spike reaches 3x3 positions in each output channel (borders ignored).
        return [
            ("lif1 (conv1)", self.conv2.out_channels * 9),
            ("lif2 (conv2)", self.fc1.out_features),
            ("lif3 (fc1)", self.fc2.out_features),
            ("lif4 (output)", 0),
        ]

    def dense_macs(self) -> int:
        return 28 * 28 * self.conv1.out_channels * 9  # computed once: the input is static

    def loss(self, record, target, smoothing: float = 0.0, kind: str | None = None):
        return spike_output_loss(record, target, smoothing, kind)


# Recipes, as differences from the seed code's settings (Recipe's defaults). Their figures
# are in README.md and benchmarks/README.md.
# The seed code's hyperparameters, with one change: with PyTorch's initialisation the deeper
# layers are silent and training at lr 1e-2 sits at chance for its first ~90 iterations, so
# the weights are calibrated to fire (`--init pytorch` is the seed code exactly).
SEED = replace(Recipe(), init="calibrated")
# Batch norm over (time x batch) makes every hidden layer fire from the start and
# train stably at a high rate; the count loss spends the gradient on the images not yet
# classified with a margin; 8 time steps keep it cheap; light augmentation; one-cycle with a
# long warm-up.
FAST = replace(Recipe(), epochs=30, lr=5e-3, schedule="onecycle", warmup=0.3, steps=8,
               augment="light", norm="batch", loss="count")
# The default, a good csnn in minutes on a laptop CPU: `fast` cut to 4 epochs (the one-cycle
# schedule spans them) at 6 time steps, with the rate loss and a wider surrogate (slope 5),
# which learn faster in the first epochs; 3% style digits, so that users' European 1s are
# told from 7s.
QUICK = replace(FAST, epochs=4, steps=6, loss="rate", surrogate=5.0, styles=0.03)
# Fashion-MNIST within quick's CPU budget: quick's network and schedule without the style
# digits (handwritten digits are no Fashion-MNIST class) and without augmentation (a few
# epochs underfit Fashion-MNIST: shifted and rotated copies only slow the fit), at half the
# batch (twice the updates for about the same compute) for 12 epochs, with the count loss:
# the rate loss holds every step's output to one spike, which underfits Fashion-MNIST's
# similar classes (shirt, T-shirt, pullover, coat).
FASHION = replace(QUICK, dataset="fashion-mnist", styles=0.0, augment="none", batch_size=64,
                  epochs=12, loss="count")
# Quicker on a CPU and fully augmented for users' own digits; the one-cycle's gentler peak
# avoids the seed's stall at chance.
ROBUST = replace(Recipe(), epochs=2, lr=5e-3, schedule="onecycle", warmup=0.15, steps=25,
                 augment="full")
# The most accurate: twice fast's time steps, the rate loss (better than count from 16 steps
# on), 10 more epochs, a weight average and a wider surrogate (neurons far from the threshold
# still learn).
BEST = replace(FAST, epochs=40, steps=16, loss="rate", ema=0.999, surrogate=5.0)
# Fine-tuning trained weights on a user's labelled folder mixed with MNIST (`snn train --data
# DIR --init-from ...`, snncli/finetune.py): `quick` cut to 3 epochs at a tenth of its peak
# rate, with a short warm-up and no style digits. The time steps, norm, surrogate and decay
# are the init checkpoint's.
FINETUNE = replace(QUICK, epochs=3, lr=5e-4, warmup=0.1, styles=0.0)


register_model(
    ModelSpec(
        name="csnn",
        summary="2-conv spiking CNN, snnTorch Leaky neurons, spike-count readout",
        config_cls=CSNNConfig,
        build=CSNN,
        config_from_recipe=recipe_mapping(surrogate="slope"),
        default_recipe="quick",
        recipes={"seed": SEED, "robust": ROBUST, "quick": QUICK, "fast": FAST, "best": BEST,
                 "fashion": FASHION, "finetune": FINETUNE},
        dataset_recipes={"fashion-mnist": "fashion"},
        normalisation=(0.0, 1.0),
    )
)
