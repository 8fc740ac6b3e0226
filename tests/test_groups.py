"""Issue 20: models that share networks train together in one vmapped step, each exactly as it
trains alone (own weights, batch order, noise, σ², floor, stage switch, Adam); a killed group
resumes exactly; a model that diverges is named and the others finish."""

import dataclasses
import signal

import pytest
import torch

import sigmavae.training as training
from sigmavae.cache import cached_runs, groups, run_dir
from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.objectives import draw_noise
from sigmavae.runs import CHECKPOINT, NonFiniteError, TrainingInterrupted, load_run
from sigmavae.runtime import Runtime
from sigmavae.training import group_step, train, train_group

QUIET = Runtime(device="cpu", progress=False, precision="fp32")
X = load_dataset("digits", "train")[:96]
BASE = dict(dataset="digits", latent_dim=4, batch_size=16, epochs1=2, epochs2=1)  # 6 batches an epoch


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def same_models(grouped, alone, weights=2e-2, elbo=1e-4):
    """Each grouped model is the one trained alone, to fp32 rounding amplified over a few epochs
    (Adam moves a weight whose gradient is near 0, i.e. all rounding, by about lr either way: the
    weights agree less closely than the ELBOs)."""
    for (mg, hg), (ma, ha) in zip(grouped, alone, strict=True):
        assert [h["stage"] for h in hg] == [h["stage"] for h in ha]  # the same stage switch
        for g, a in zip(hg, ha, strict=True):
            assert g["elbo"] == pytest.approx(a["elbo"], rel=elbo)
            assert g["sigma2"] == pytest.approx(a["sigma2"], rel=elbo)
        assert mg.variance == ma.variance and mg.floor == pytest.approx(ma.floor, rel=elbo)
        assert mg.sigma2 == pytest.approx(ma.sigma2, rel=elbo)
        for (name, g), a in zip(mg.state_dict().items(), ma.state_dict().values(), strict=True):
            assert relative(g, a) < weights, name


@pytest.mark.parametrize("method,extra", [
    ("sigma", {"sigma_update": "closed_form"}),  # σ² per batch by Eq. 10, then the pixel stage
    ("fixed", {}), ("dip-vae", {}), ("wae", {}),
])
def test_one_group_step_is_each_models_step(method, extra):
    """The vmapped step gives every model its own loss and gradient (the mathematics, to fp32
    rounding): three models with different weights, batches and noise, each against itself alone."""
    configs = [TrainConfig(method=method, seed=s, **BASE, **extra) for s in range(3)]
    if method == "fixed":
        configs = [dataclasses.replace(c, seed=0, sigma2=s2)
                   for c, s2 in zip(configs, (0.1, 0.3, 1.0), strict=True)]
    models = []
    for c in configs:
        torch.manual_seed(c.seed + 10 * c.sigma2)
        models.append(training.VAE.from_config(c))
    if method == "sigma":  # stage 2 of two of them: different floors
        models[1].start_pixel_variance(0.5)
        models[2].set_sigma2(0.3)
        models[2].start_pixel_variance(0.5)
        configs, models = configs[1:], models[1:]
    g = torch.Generator().manual_seed(0)
    xs = [X[torch.randperm(96, generator=g)[:16]].float() / 255 for _ in models]
    noise = [draw_noise(c, 16, 4, torch.Generator().manual_seed(i), torch.device("cpu"))
             for i, c in enumerate(configs)]
    losses, terms = group_step(models, configs, xs, noise)
    torch.stack(losses).sum().backward()
    together = [[p.grad.clone() for p in m.parameters() if p.grad is not None] for m in models]
    for k, (m, c) in enumerate(zip(models, configs, strict=True)):
        m.zero_grad(set_to_none=True)
        [loss], [t] = group_step([m], [c], [xs[k]], [noise[k]])
        loss.backward()
        assert float(losses[k].detach()) == pytest.approx(float(loss.detach()), rel=1e-5)
        assert torch.allclose(terms[k].elbo, t.elbo, rtol=1e-5, atol=1e-3)
        if t.sigma2_star is not None:
            assert float(terms[k].sigma2_star) == pytest.approx(float(t.sigma2_star), rel=1e-5)
        alone = [p.grad for p in m.parameters() if p.grad is not None]
        assert len(alone) == len(together[k])  # the same parameters get a gradient (none in stage 1's
        for a, b in zip(together[k], alone, strict=True):  # variance network)
            assert relative(a, b) < 1e-4


@pytest.mark.parametrize("kind", ["seeds", "fixed sigma2"])
def test_a_group_trains_each_model_as_alone(kind):
    """Three seeds of Algorithm 1 (Adam on σ, the stage switch after 2 epochs, each model's own
    σ²_dataset and floor), or Table 1's fixed σ² models: grouped = each trained alone."""
    if kind == "seeds":
        configs = [TrainConfig(seed=s, **BASE) for s in (0, 1, 2)]
    else:
        configs = [TrainConfig(method="fixed", sigma2=s2, **BASE) for s2 in (0.05, 0.2, 1.0)]
    grouped = train_group(configs, runtime=QUIET, data=X)
    alone = [train(c, runtime=QUIET, data=X) for c in configs]
    same_models(grouped, alone)
    assert len({m.sigma2 for m, _ in grouped}) == 3  # they did differ


def test_a_killed_group_resumes_exactly(tmp_path, monkeypatch):
    configs = [TrainConfig(seed=s, **BASE) for s in (0, 1)]
    outs = [tmp_path / f"s{c.seed}" for c in configs]
    reference = train_group(configs, runtime=QUIET, data=X)
    real, calls = training.OBJECTIVES["sigma"], []

    def objective(*args, **kwargs):  # the group's 9th step: batch 3 of epoch 2
        calls.append(1)
        if len(calls) == 9:
            signal.raise_signal(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setitem(training.OBJECTIVES, "sigma", objective)
    with pytest.raises(TrainingInterrupted, match=r"s0/checkpoint.pt \(after batch 3 of epoch 2\).*s1/"):
        train_group(configs, out_dirs=outs, runtime=QUIET, data=X)
    monkeypatch.undo()
    for out in outs:
        assert torch.load(out / CHECKPOINT, weights_only=True)["epoch_in_progress"]["batch"] == 3
    train_group(configs, out_dirs=outs, runtime=QUIET, data=X, resume=True)
    for out, (model, history) in zip(outs, reference, strict=True):
        resumed, _, again = load_run(out)
        assert [{k: v for k, v in h.items() if k != "seconds"} for h in again] == \
               [{k: v for k, v in h.items() if k != "seconds"} for h in history]
        for name, value in resumed.state_dict().items():
            assert torch.equal(value, model.state_dict()[name]), name


def test_one_model_diverging_is_named_and_the_others_finish(tmp_path, monkeypatch):
    """Seed 1's noise turns NaN in its second epoch: it leaves the group with the error that names
    it, its last good checkpoint kept; seeds 0 and 2 finish, in place in the cache, as if alone."""
    configs = [TrainConfig(seed=s, **BASE) for s in (0, 1, 2)]
    real, calls = training.draw_noise, []

    def poisoned(config, *args):
        noise = real(config, *args)
        if config.seed == 1:
            calls.append(1)
            if len(calls) > 8:
                return tuple(torch.full_like(n, float("nan")) for n in noise)
        return noise

    monkeypatch.setattr(training, "draw_noise", poisoned)
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: X)
    here = Runtime(device="cpu", progress=False, precision="fp32", cache_dir=tmp_path)
    with pytest.raises(NonFiniteError, match=r"digits sigma seed 1, epoch 2 .*batch 3 of 6.*last good "
                                             r"checkpoint .*after epoch 1"):
        cached_runs(configs, runtime=here)
    monkeypatch.undo()
    bad = run_dir(configs[1], tmp_path)
    assert not bad.exists() and (bad.with_name(bad.name + ".partial") / CHECKPOINT).is_file()
    finished = [load_run(run_dir(c, tmp_path)) for c in (configs[0], configs[2])]
    alone = [train(c, runtime=QUIET, data=X) for c in (configs[0], configs[2])]
    same_models([(m, h) for m, _, h in finished], alone)


def test_groups_are_models_that_share_networks():
    a = [TrainConfig(seed=s, **BASE) for s in range(5)]
    b = [TrainConfig(method="fixed", sigma2=s2, **BASE) for s2 in (0.1, 1.0)]
    c = [TrainConfig(seed=0, **{**BASE, "latent_dim": 2})]
    assert groups(a + b + c, 2) == [a[:2], a[2:4], a[4:], b, c]
    with pytest.raises(ValueError, match="differ in latent_dim, method: train them in separate groups"):
        train_group(a[:1] + b[:1] + c, runtime=QUIET, data=X)
    with pytest.raises(ValueError, match="the same model twice"):
        train_group([a[0], a[0]], runtime=QUIET, data=X)
