"""The model contract: what every registered SNN offers the train/evaluate/predict code.

A model is a `SpikingNet` subclass (its abstract methods implemented, `lifs` set in
`__init__`) built from a `SpikingConfig` subclass; docs/adding-a-model.md gives the recipe.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import MAX_STEPS, Checked, choice, flag, number, whole
from ..recipes import Recipe


def learned_decay_problems(values: dict, decay: str) -> list[str]:
    """A learned decay is kept in (0, 1) by a sigmoid, so it cannot start at 1."""
    if values["learn_decay"] and values[decay] >= 1:
        return [f"{decay} {values[decay]!r} must be below 1 when learn_decay is true"]
    return []


@dataclass
class SpikingConfig(Checked):
    """The config fields every spiking model has, which training and evaluation read by
    name. A model's config subclasses it (as a @dataclass), adds its layer and neuron fields,
    names its decay field and redeclares `steps` with its own default. Field names are stored
    in checkpoints: renaming one makes older checkpoints unreadable."""

    steps: int = whole(1, MAX_STEPS, 25)  # time steps per image
    threshold: float = number(0, math.inf, 1.0, low_open=True)  # membrane threshold
    num_classes: int = whole(10, 10, 10)  # the ten digits
    # "batch": batch norm after each hidden synaptic layer (folds away at inference)
    norm: str = choice("none", "batch", default="none")
    learn_decay: bool = flag(False)  # learn each LIF layer's decay, starting from the config's
    # In training, the share of the spikes into each fully connected layer that are dropped
    # (spike_dropout); a regulariser, so it has no effect on evaluation.
    dropout: float = number(0, 1, 0.0, high_open=True)
    # The field holding the membrane decay per step (csnn "beta", mlp "tau"): a learned decay
    # starts from it, so it must then be below 1.
    decay_field: ClassVar[str] = ""
    # Fields that change how the network trains, not the network a checkpoint holds: a
    # checkpoint fine-tuned with another value is still the same model.
    training_only: ClassVar[tuple[str, ...]] = ("dropout",)

    @classmethod
    def combined_problems(cls, values: dict) -> list[str]:
        return learned_decay_problems(values, cls.decay_field) if cls.decay_field else []


def recipe_mapping(surrogate: str) -> Callable[[Recipe], dict[str, Any]]:
    """A ModelSpec's `config_from_recipe` for a SpikingConfig: a recipe sets the time steps,
    the norm, the dropout, whether the decay is learned, and (its `surrogate`) the
    surrogate-gradient width held in the config field named `surrogate`."""

    def config_from_recipe(recipe: Recipe) -> dict[str, Any]:
        return {"steps": recipe.steps, "norm": recipe.norm, surrogate: recipe.surrogate,
                "learn_decay": recipe.decay == "learned", "dropout": recipe.dropout}

    return config_from_recipe


def weight_in_hwc_order(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A Linear's weight [out, C*H*W], which reads a feature map flattened as (C, H, W), with
    its inputs reordered to read the same map flattened channels-last, as (H, W, C)."""
    out = weight.shape[0]
    return weight.view(out, -1, height, width).permute(0, 2, 3, 1).reshape(out, -1)


def spike_output_loss(record: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0,
                      kind: str | None = None) -> torch.Tensor:
    """The losses of a spiking output layer's record [T, B, C]. rate (the default): snnTorch's
    `ce_rate_loss`, cross-entropy of each step's spikes averaged over steps (a step's logits
    are 0 or 1, so it never saturates: confidently right images pull as hard as wrong ones).
    count: cross-entropy of the spike counts (snnTorch's `ce_count_loss`), which stops pulling
    once an image's count margin is large."""
    if kind == "count":
        return F.cross_entropy(record.sum(0), target, label_smoothing=smoothing)
    steps = record.shape[0]
    return F.cross_entropy(record.flatten(0, 1), target.repeat(steps), label_smoothing=smoothing)


class _Stop(Exception):
    """Raised by a forward hook to end a forward pass early."""


@dataclass
class Classified:
    """A batch through the network: `record` [T, B, C] is the output layer over time, `scores`
    [B, C] its readout (spike counts, or mean output) and `ranking` [B, C] orders the classes,
    best first: the scores, with spike-count ties broken by the output layer's input current."""

    record: torch.Tensor
    scores: torch.Tensor
    ranking: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.ranking.argmax(1)


def ranking(scores: torch.Tensor, current: torch.Tensor | None) -> torch.Tensor:
    """Integer spike counts [B, C] with ties ordered by `current` [B, C] (None: the scores):
    each class's rank by current, scaled into [0, 0.5), is added, which orders equal counts
    and never reorders different ones."""
    if current is None:
        return scores
    rank = current.argsort(dim=1, stable=True).argsort(dim=1)
    return scores + rank.to(scores.dtype) / (2 * scores.shape[1])


class _CheckedWhenBuilt(abc.ABCMeta):
    """Abstract methods, as abc checks them, and once a model is built, the attributes its
    `__init__` must set (`SpikingNet.contract_problems`): a model that lacks one fails where
    it is built, naming what it lacks, not deep inside training."""

    def __call__(cls, *args, **kwargs):
        model = super().__call__(*args, **kwargs)
        problems = model.contract_problems()
        if problems:
            raise TypeError(f"{cls.__name__} breaks the SpikingNet contract: {'; '.join(problems)}")
        return model


class SpikingNet(nn.Module, metaclass=_CheckedWhenBuilt):
    """A network simulated for `steps` time steps on a static image: the contract every
    registered model fulfils.

    forward(x [B,1,28,28]) returns the output layer's record [T, B, classes]; `readout` turns it
    into per-class scores; `loss` is the model's training criterion.
    Stateless layers run over (time chunk x batch) at once; `time_chunk` bounds that chunk so
    memory stays in check (None = all steps in one chunk; `chunks` says when it is ignored).
    `backend = "snntorch"` runs the same weights the way snnTorch users do, for comparison.
    `precision = "bf16"` runs the stateless layers in bf16 (spikes are exact in bf16; membranes
    stay fp32).

    A subclass sets the class attributes below, implements the abstract methods and, in
    `__init__` after `super().__init__(config)`, sets `lifs`. The rest (forward, readout,
    classify, calibrate, confidence) is shared.
    """

    # What a subclass declares.
    output_is_spikes: bool = True  # spike counts are the readout; False: the mean output
    # The layer feeding a spiking output layer (its attribute name). At a few time steps the
    # output spike counts often tie, and `argmax` would give every tie to the lower digit: of
    # the tied classes, the one whose neuron received the most input current wins instead.
    output_synapse: str = ""
    losses: tuple[str, ...] = ()  # training criteria `loss` knows; the first is the default

    # What every model holds once built.
    config: SpikingConfig
    # The LIF layers (snncli.neurons), input to output. Each is called as
    # `lif(current, state, ...) -> (spikes, state, membrane)` and has `decay()`; evaluation
    # counts their spikes and calibration scales the layer before each (`synapses`).
    lifs: nn.ModuleList

    def __init__(self, config: SpikingConfig):
        super().__init__()
        self.config = config
        self.time_chunk: int | None = None
        self.backend = "engine"
        self.precision = "fp32"  # or "bf16": conv/linear layers under autocast, LIF in fp32
        # Add a conv layer's bias after its max pool (set on CUDA, where the bias is a separate
        # pass over the conv output; on a CPU it is fused into the convolution).
        self.pool_before_bias = False
        # (start, total) while this process trains images start.. of a global batch of
        # `total` (a data-parallel run, `batch_share`); None: the batch is all its own.
        self.share: tuple[int, int] | None = None

    def contract_problems(self) -> list[str]:
        """What a built model lacks of the contract (checked whenever one is built)."""
        problems = []
        if not isinstance(self.config, SpikingConfig):
            problems.append(f"config is a {type(self.config).__name__}, not a SpikingConfig")
        if not (self.losses and all(isinstance(name, str) for name in self.losses)):
            problems.append("losses must name at least one training criterion")
        lifs = getattr(self, "lifs", None)
        if not isinstance(lifs, nn.ModuleList) or len(lifs) == 0:
            return [*problems, "__init__ must set lifs, an nn.ModuleList of its LIF layers"]
        for method in ("synapses", "spiking_layers"):
            count = len(getattr(self, method)())
            if count != len(lifs):
                problems.append(f"{method}() gives {count} layers for {len(lifs)} in lifs")
        if self.output_synapse and not isinstance(getattr(self, self.output_synapse, None),
                                                  nn.Module):
            problems.append(f"output_synapse {self.output_synapse!r} is not a layer of the model")
        return problems

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """x [B, 1, 28, 28] -> output record [T, B, classes] with the chosen backend."""
        steps = steps or self.config.steps
        run = self.forward_snntorch if self.backend == "snntorch" else self.forward_engine
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return run(x, steps).float()
        return run(x, steps)

    @abc.abstractmethod
    def forward_engine(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The fast path: the whole chunk of steps through each stateless layer at once (see
        `chunks`), the LIF layers' fused time loops in between; the same numbers as
        `forward_snntorch` to float rounding."""

    def spike_dropout(self, batch: int, features: int) -> torch.Tensor | None:
        """While training with `config.dropout` p > 0: a mask [batch, features] of 0 and
        1/(1-p) for the spikes [T, batch, features] into a fully connected layer, else None.
        One mask serves every time step: a neuron dropped for an image stays dropped through
        its steps, so the mask removes the neuron, not a few of its spikes. It is drawn on the
        CPU, from the generator a resumed run restores; in a data-parallel run as the whole
        batch's, of which each process takes its images' rows (`batch_share`), so that it
        trains as one process would."""
        p = self.config.dropout
        if not self.training or p == 0:
            return None
        start, total = self.share or (0, batch)
        keep = torch.rand(total, features)[start : start + batch] >= p
        return (keep.float() / (1 - p)).to(next(self.parameters()).device)

    @contextlib.contextmanager
    def batch_share(self, start: int, total: int):
        """For the block's forward passes, the images are images start.. of a batch of `total`
        (one process's share in a data-parallel run), so `spike_dropout` gives them their rows
        of the whole batch's masks."""
        self.share = (start, total)
        try:
            yield
        finally:
            self.share = None

    @staticmethod
    def dropped(spikes: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Spikes [..., B, F] times a `spike_dropout` mask [B, F] (None: unchanged)."""
        return spikes if mask is None else spikes * mask

    @staticmethod
    def over_time(norm: nn.Module, current: torch.Tensor) -> torch.Tensor:
        """A 1-d norm applied to [T, B, F] with statistics over time x batch (tdBN)."""
        return norm(current.flatten(0, 1)).view(current.shape)

    @abc.abstractmethod
    def forward_snntorch(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The reference: snnTorch neurons, every layer run once per time step, on the same
        weights (the tests compare it with `forward_engine`)."""

    def snntorch_leaky(self, device: torch.device) -> list:
        """snnTorch's Leaky neurons in the place of `self.lifs` (LeakySubtract: the same decay,
        threshold and fast-sigmoid slope, `config.slope`), for `forward_snntorch`."""
        import snntorch
        from snntorch import surrogate

        grad = surrogate.fast_sigmoid(slope=self.config.slope)
        return [
            snntorch.Leaky(beta=lif.decay(), threshold=self.config.threshold,
                           spike_grad=grad).to(device)
            for lif in self.lifs
        ]

    def chunks(self, steps: int):
        """(start, length) pairs covering `steps` time steps. While a model with batch norm
        trains, all steps are one chunk on every device: its statistics span time x batch
        (tdBN), so a recipe trains the same model on a CPU as on a GPU (chunks would each have
        statistics of their own)."""
        if self.training and self.config.norm == "batch":
            return [(0, steps)]
        size = self.time_chunk or steps
        return [(t, min(size, steps - t)) for t in range(0, steps, size)]

    def readout(self, record: torch.Tensor) -> torch.Tensor:
        """[T, B, C] -> [B, C] scores: spike counts (spiking output) or mean output."""
        return record.sum(0) if self.output_is_spikes else record.mean(0)

    def classify(self, x: torch.Tensor, steps: int | None = None) -> Classified:
        """Run the network on x [B, 1, 28, 28] and rank the classes of each image."""
        record, current = self._forward_with_output_current(x, steps)
        scores = self.readout(record)
        return Classified(record, scores, ranking(scores, current))

    def _forward_with_output_current(self, x, steps):
        """(record, the output layer's input current summed over steps [B, C] or None)."""
        batch = x.shape[0]
        if not (self.output_is_spikes and self.output_synapse) or batch == 0:
            return self(x, steps=steps), None
        sums = []

        def add(module, inputs, output):  # [k, B, C] per chunk (engine), [B, C] per step
            sums.append(output.float().reshape(-1, batch, output.shape[-1]).sum(0))

        hook = getattr(self, self.output_synapse).register_forward_hook(add)
        try:
            record = self(x, steps=steps)
        finally:
            hook.remove()
        return record, torch.stack(sums).sum(0)

    @abc.abstractmethod
    def loss(self, record, target, smoothing: float = 0.0, kind: str | None = None):
        """Training criterion `kind` (one of `losses`; None = the first) of a record
        [T, B, classes] and labels [B]: a 0-dim tensor; `smoothing` is cross-entropy label
        smoothing."""

    @abc.abstractmethod
    def synapses(self) -> list[nn.Module]:
        """The layer whose weight scales each LIF layer's input current (the synaptic layer,
        or the batch norm after it), one per layer of `self.lifs`, in order."""

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, rate: float = 0.03, steps: int = 20) -> list[float]:
        """Data-driven initialisation: scale each synaptic layer's weights, first to last, until
        the LIF layer it feeds fires at about `rate` (spikes per neuron per step) on images `x`.

        With PyTorch's default initialisation the deep layers of these networks are nearly
        silent, so surrogate gradients are tiny and training at a high learning rate sits at
        chance for its first iterations. A low rate is enough to start learning; a high one
        makes training worse. Returns the firing rate reached per layer.
        """
        reached = []
        steps = min(steps, self.config.steps)
        chunk, self.time_chunk = self.time_chunk, None  # one chunk: the hook sees all steps
        # Batch norm's running statistics would drift with the trial gains: keep them as they were.
        buffers = {name: b.clone() for name, b in self.named_buffers()}
        try:
            for index, layer in enumerate(self.synapses()):
                # Bisection on a log scale of the weights' gain: firing responds steeply.
                initial, gain, low, high = layer.weight.clone(), 1.0, None, None
                for _ in range(40):
                    layer.weight.copy_(initial * gain)
                    fired = self._firing_rate(x, index, steps)
                    if abs(fired - rate) <= 0.15 * rate:
                        break
                    if fired < rate:
                        low = gain
                        gain = gain * 2 if high is None else (low * high) ** 0.5
                    else:
                        high = gain
                        gain = gain / 2 if low is None else (low * high) ** 0.5
                reached.append(fired)
        finally:
            self.time_chunk = chunk
            for name, b in self.named_buffers():
                b.copy_(buffers[name])
        return reached

    def _firing_rate(self, x: torch.Tensor, index: int, steps: int) -> float:
        """Spikes per neuron per step of LIF layer `index` (the forward stops there)."""
        seen = []

        def stop(module, inputs, output):
            seen.append(output[0].float().mean().item())
            raise _Stop

        hook = self.lifs[index].register_forward_hook(stop)
        try:
            self(x, steps=steps)
        except _Stop:
            pass
        finally:
            hook.remove()
        return seen[0]

    @abc.abstractmethod
    def spiking_layers(self) -> list[tuple[str, int]]:
        """(name, fan-out) of each LIF layer in `self.lifs`: the synapses one spike drives."""

    @abc.abstractmethod
    def dense_macs(self) -> int:
        """Multiply-accumulates of the first layer, which sees the analogue image, per image."""

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        """[B, C] -> [B, C] shares: of output spikes, or softmax of mean output."""
        if self.output_is_spikes:
            total = scores.sum(1, keepdim=True)
            return torch.where(total > 0, scores / total.clamp_min(1e-12), torch.zeros_like(scores))
        return F.softmax(scores, dim=1)
