import dataclasses

import pytest
import snntorch as snn
import torch
from snntorch import surrogate

from snncli.errors import SnnError
from snncli.models import SpikingNet, create_model, get_model_spec, list_models
from snncli.neurons import LeakyHardReset, LeakySubtract
from snncli.recipes import Recipe


def test_the_built_in_models_are_registered():
    assert list_models() == ["csnn", "mlp", "wide"]


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_complete_metadata(name):
    spec = get_model_spec(name)
    assert spec.summary
    assert dataclasses.is_dataclass(spec.config_cls)
    config = spec.config_cls()
    assert config.steps > 0 and config.num_classes == 10
    assert spec.default_recipe in spec.recipes
    assert all(name in spec.recipes for name in spec.dataset_recipes.values())
    for recipe in spec.recipes.values():
        assert isinstance(recipe, Recipe) and recipe.setting_problems(spec.losses) == []
    # Every recipe maps to a valid config of the model (register_model checked it too).
    for recipe in spec.recipes.values():
        config = spec.config_for(recipe)
        assert (config.steps, config.norm) == (recipe.steps, recipe.norm)
        assert config.learn_decay == (recipe.decay == "learned")
        assert config.dropout == recipe.dropout
    mean, std = spec.normalisation
    assert std > 0


@pytest.mark.parametrize("name,steps", [("csnn", 100), ("mlp", 6), ("wide", 4)])
def test_models_build_with_seed_shapes(name, steps):
    model = create_model(name)
    assert isinstance(model, SpikingNet)
    assert model.config.steps == steps
    record = model(torch.rand(3, 1, 28, 28), steps=4)
    assert record.shape == (4, 3, 10)
    assert model.readout(record).shape == (3, 10)
    loss = model.loss(record, torch.tensor([1, 2, 3]))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_csnn_layer_sizes_match_the_seed():
    m = create_model("csnn")
    assert (m.conv1.in_channels, m.conv1.out_channels, m.conv1.padding) == (1, 32, (1, 1))
    assert (m.conv2.in_channels, m.conv2.out_channels) == (32, 64)
    assert (m.fc1.in_features, m.fc1.out_features) == (3136, 512)
    assert (m.fc2.in_features, m.fc2.out_features) == (512, 10)
    assert sum(p.numel() for p in m.parameters()) == 1_630_090


def test_mlp_layer_sizes_match_the_seed():
    m = create_model("mlp")
    assert [(fc.in_features, fc.out_features) for fc in (m.fc1, m.fc2, m.fc3)] == [
        (784, 512),
        (512, 512),
        (512, 10),
    ]


def test_unknown_model_lists_valid_names():
    with pytest.raises(SnnError, match="unknown model 'resnet'.*csnn, mlp, wide"):
        create_model("resnet")


def test_csnn_lif_matches_snntorch_leaky_step_by_step():
    torch.manual_seed(0)
    current = (torch.randn(30, 4, 16) * 1.5).requires_grad_()
    ours = LeakySubtract(beta=0.5, threshold=1.0, slope=25)
    spikes, _, mems = ours(current, record_membrane=True)

    ref = snn.Leaky(beta=0.5, threshold=1.0, spike_grad=surrogate.fast_sigmoid(slope=25))
    current_ref = current.detach().clone().requires_grad_()
    mem = ref.init_leaky()
    ref_spikes, ref_mems = [], []
    for x in current_ref:
        spk, mem = ref(x, mem)
        ref_spikes.append(spk)
        ref_mems.append(mem)
    ref_spikes, ref_mems = torch.stack(ref_spikes), torch.stack(ref_mems)

    assert spikes.sum() > 50  # the check is only meaningful if neurons fire and reset
    assert torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(mems, ref_mems, rtol=0, atol=1e-6)
    weights = torch.randn_like(spikes)
    (spikes * weights).sum().backward()
    (ref_spikes * weights).sum().backward()
    torch.testing.assert_close(current.grad, current_ref.grad, rtol=1e-5, atol=1e-6)


def test_mlp_lif_follows_its_equations():
    torch.manual_seed(1)
    current = (torch.randn(6, 5, 8) + 0.8).requires_grad_()
    spikes, _, mems = LeakyHardReset(tau=0.5, threshold=1.0, gamma=1.0)(
        current, record_membrane=True
    )
    v = torch.zeros(5, 8)
    for t in range(6):
        v = 0.5 * v + current[t].detach()
        assert torch.equal(mems[t].detach(), v)
        assert torch.equal(spikes[t].detach(), (v > 1.0).float())
        v = v * (v <= 1.0)  # hard reset to 0
    # The first step's gradient is the triangle surrogate alone (later steps feed back into it).
    current.grad = None
    spikes[0].sum().backward()
    x = current[0].detach() - 1.0
    torch.testing.assert_close(current.grad[0], (1.0 - x.abs()).clamp_min(0))


@pytest.mark.parametrize("name", list_models())
def test_running_time_in_chunks_gives_the_same_result(name):
    torch.manual_seed(2)
    model = create_model(name)
    with torch.no_grad():  # stronger weights so every layer, the output too, spikes
        for p in model.parameters():
            p.mul_(3)
    x = torch.rand(2, 1, 28, 28) * 3
    whole = model(x, steps=12)
    model.time_chunk = 5
    chunked = model(x, steps=12)
    # Equal up to rounding: a matrix product over 5 steps' rows may sum in another order than
    # over all 12 (it does on some CPUs); a wrong state hand-over would differ by far more.
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    assert whole.abs().sum() > 0


# On a GPU the engine runs the Triton kernels (CI has none; run there when one is at hand).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("learn_decay", [False, True])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list_models())
def test_engine_matches_the_snntorch_reference_forward_and_backward(
    name, device, learn_decay, run_both_backends
):
    """Spikes/outputs and every parameter's gradient, a learned decay's included."""
    # Full fp32 on a GPU too: TF32 convolutions would round the two backends' batches apart.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        engine_matches_the_reference(name, device, run_both_backends, learn_decay)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def engine_matches_the_reference(name, device, run_both_backends, learn_decay=False):
    torch.manual_seed(3)
    model = create_model(name, learn_decay=learn_decay).to(device)
    with torch.no_grad():  # stronger weights so every layer, the output too, spikes at init
        for p in model.parameters():
            p.mul_(4)
        for i, lif in enumerate(model.lifs if learn_decay else []):  # decays 0.62, 0.69, ...
            lif.decay_logit.fill_(0.5 + 0.3 * i)
    x = torch.rand(4, 1, 28, 28).to(device)
    target = torch.tensor([0, 3, 5, 9], device=device)
    results = run_both_backends(model, x, target, steps=8)
    ref, ours = results["snntorch"], results["engine"]
    if model.output_is_spikes:
        assert torch.equal(ours[0], ref[0]) and ours[0].sum() > 0
    else:
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-6)
    for g_ours, g_ref in zip(ours[1], ref[1], strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-5)
    names = [name for name, _ in model.named_parameters()]
    decay_grads = [g for n, g in zip(names, ours[1], strict=True) if n.endswith("decay_logit")]
    assert len(decay_grads) == (len(model.lifs) if learn_decay else 0)
    assert all(g.abs() > 0 for g in decay_grads)


def test_seed_recipes_are_the_seed_code_exactly():
    csnn = get_model_spec("csnn").recipes["seed"]
    assert (csnn.epochs, csnn.batch_size, csnn.lr, csnn.steps) == (1, 128, 1e-2, 100)
    assert csnn.schedule == "constant" and csnn.augment == "none"
    assert (csnn.optimizer, csnn.weight_decay, csnn.label_smoothing) == ("adam", 0, 0)
    assert csnn.init == "calibrated"  # the one change: so it does not stall at chance
    mlp = get_model_spec("mlp").recipes["seed"]
    assert (mlp.steps, mlp.schedule, mlp.augment, mlp.lr) == (6, "constant", "none", 1e-3)


def test_a_recipe_with_an_unknown_setting_is_refused_at_registration():
    from snncli.models import register_model

    recipe = dataclasses.replace(get_model_spec("mlp").recipes["seed"], augment="extreme")
    spec = dataclasses.replace(get_model_spec("mlp"), name="bad", recipes={"seed": recipe},
                               default_recipe="seed")
    message = "recipe 'seed': augment 'extreme' must be one of: none, light, full"
    with pytest.raises(ValueError, match=message):
        register_model(spec)
    assert "bad" not in list_models()


@pytest.mark.parametrize("name", list_models())
def test_label_smoothing_penalises_certainty(name):
    model = create_model(name)
    record = torch.zeros(6, 2, 10)
    record[:, 0, 3] = record[:, 1, 7] = 8.0  # confident and right
    target = torch.tensor([3, 7])
    plain, smoothed = model.loss(record, target), model.loss(record, target, 0.1)
    assert smoothed > plain + 0.05


def test_csnn_losses_are_snntorchs_rate_and_count_cross_entropy():
    import snntorch.functional as SF

    model = create_model("csnn")
    torch.manual_seed(12)
    record = (torch.rand(8, 5, 10) > 0.6).float()
    target = torch.tensor([1, 4, 4, 0, 9])
    rate, count = model.loss(record, target), model.loss(record, target, kind="count")
    torch.testing.assert_close(rate, SF.ce_rate_loss()(record, target).reshape(()))
    torch.testing.assert_close(count, SF.ce_count_loss()(record, target).reshape(()))
    assert model.loss(record, target, kind="rate") == rate and abs(rate - count) > 0.05
    # The count loss stops pulling on images whose margin is already large; the rate loss does not.
    certain = torch.zeros(8, 1, 10)
    certain[:, 0, 3] = 1.0
    target = torch.tensor([3])
    assert model.loss(certain, target, kind="count") < 0.01 < model.loss(certain, target)


def test_a_recipe_with_a_loss_its_model_lacks_is_refused():
    from snncli.models import register_model

    spec = get_model_spec("mlp")
    recipe = dataclasses.replace(spec.recipes["seed"], loss="count")
    bad = dataclasses.replace(spec, name="bad-loss", recipes={"seed": recipe},
                              default_recipe="seed")
    message = "recipe 'seed': loss 'count' must be one of: mean"
    with pytest.raises(ValueError, match=message):
        register_model(bad)
    assert "bad-loss" not in list_models()
