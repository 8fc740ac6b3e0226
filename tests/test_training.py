"""Algorithm 1 on small data: the stage switch, the floor, reproducibility, save and reload."""

import dataclasses
import math

import pytest
import torch

from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.epoch import run_epoch
from sigmavae.models import VAE
from sigmavae.runs import load_run
from sigmavae.runtime import Runtime
from sigmavae.training import stages, train

X = load_dataset("synthetic", "train")
QUIET = Runtime(device="cpu", progress=False)
SMALL = dict(dataset="synthetic", latent_dim=4, batch_size=64, lr=1e-3)


def test_stage_switch_freezes_sigma2_and_keeps_variances_above_floor():
    stage1, h1 = train(TrainConfig(**SMALL, epochs1=3, epochs2=0), runtime=QUIET, data=X)
    model, history = train(TrainConfig(**SMALL, epochs1=3, epochs2=2), runtime=QUIET, data=X)
    assert [h["stage"] for h in history] == [1, 1, 1, 2, 2]
    assert h1[-1]["sigma2"] < h1[0]["sigma2"] < 1  # σ² is learned in stage 1 (it starts at 1)
    assert model.sigma2 == stage1.sigma2  # stage 1 is reproducible and σ²_dataset is frozen after it
    assert model.variance == "pixel" and model.floor == pytest.approx(0.5 * model.sigma2)
    with torch.no_grad():
        mu, _ = model.encode(X)
        for z in (mu, torch.randn(500, 4) * 3):  # posterior means and far-out prior draws
            var = model.decode(z)[1].exp()
            assert float(var.min()) >= model.floor * (1 - 1e-5)
    assert all(h["sigma2_min"] >= model.floor * (1 - 1e-5) for h in history[3:])


def test_without_the_floor_stage_2_variances_collapse_and_with_it_they_do_not():
    # Issue 5: the floor is what keeps stage 2 from collapsing. Digits have pixels that are 0 in
    # every image; the decoder fits them exactly, so the likelihood pays for shrinking their σ².
    x = load_dataset("digits", "train")[:64]
    runs, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # on two busy cores, several times faster than two threads
    try:
        for floor in (0.0, 0.5):
            cfg = TrainConfig(dataset="digits", latent_dim=4, batch_size=16, lr=2e-3, epochs1=1,
                              epochs2=2, variance_floor=floor)
            runs[floor] = train(cfg, runtime=QUIET, data=x)
    finally:
        torch.set_num_threads(threads)
    (free, h_free), (floored, h_floored) = runs[0.0], runs[0.5]
    assert free.sigma2 == floored.sigma2  # the same stage 1, the same σ²_dataset
    assert min(h["sigma2_min"] for h in h_free[1:]) < 1e-3 * free.sigma2  # collapsing towards 0
    assert all(h["sigma2_min"] >= floored.floor * (1 - 1e-5) for h in h_floored[1:])
    with torch.no_grad():
        assert float(floored.decode(floored.encode(x)[0])[1].exp().min()) >= floored.floor * (1 - 1e-5)


def test_section_3_4_per_pixel_variance_from_the_first_epoch_without_stage_1_or_floor(tmp_path):
    """Section 3.4's counterfactual (epochs1 = 0): no stage 1, so no σ²_dataset and no stage-1
    run; the variance network learns from its initialisation (not started at σ²_dataset) with σ²
    frozen at its initial 1 and no floor; the run reloads in its pixel mode."""
    from sigmavae.cache import cached_run
    from sigmavae.training import model_name, stage_1_config

    config = TrainConfig(**SMALL, epochs1=0, epochs2=2, variance_floor=0.0)
    assert stage_1_config(config) is None
    assert model_name(config) == "synthetic sigma per-pixel σ² from the first epoch, no floor, z 4-d, seed 0"
    here = Runtime(device="cpu", cache_dir=tmp_path, progress=False, precision="fp32")
    run = cached_run(config, runtime=here)
    model, loaded, history = load_run(run)
    assert loaded == config and [h["stage"] for h in history] == [2, 2]
    assert model.variance == "pixel" and model.floor == 0.0 and model.sigma2 == 1.0
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()] == [run.name]  # no stage-1 run
    assert all(h["sigma2_min"] < 1.0 for h in history)  # σ² per pixel, learned from the start
    last = model.variance_net.net[-1]  # not warm-started at logit(σ² − floor) = logit(1), which is +inf
    assert torch.isfinite(getattr(last, "conv", last).bias).all()
    with pytest.raises(ValueError, match="need epochs1 >= 1"):
        TrainConfig(**SMALL, epochs1=0, epochs2=0)


def test_closed_form_sigma_tracks_the_reconstruction_error():
    model, history = train(TrainConfig(**SMALL, epochs1=3, epochs2=0, sigma_update="closed_form"),
                           runtime=QUIET, data=X)
    assert not model.sigma.requires_grad
    # Eq. 10 sets σ² to the batch's mean squared error: far from the initial 1 after one batch.
    assert history[0]["sigma2"] < 0.2


def test_training_is_reproducible_and_a_run_reloads(tmp_path):
    cfg = TrainConfig(**SMALL, epochs1=2, epochs2=1)
    a, ha = train(cfg, runtime=QUIET, out_dir=tmp_path / "run", data=X)
    b, hb = train(cfg, runtime=QUIET, data=X)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    loaded, cfg2, h2 = load_run(tmp_path / "run")
    assert cfg2 == cfg and [h["elbo"] for h in h2] == [h["elbo"] for h in ha]
    assert loaded.variance == "pixel" and loaded.floor == a.floor
    z = torch.randn(8, 4)
    with torch.no_grad():
        outputs = zip(loaded.decode(z) + loaded.encode(X[:8]), a.decode(z) + a.encode(X[:8]), strict=True)
        for got, want in outputs:
            assert torch.equal(got, want)


def test_fixed_method_trains_both_stage_budgets_at_constant_sigma2():
    model, history = train(TrainConfig(**SMALL, method="fixed", sigma2=0.5, epochs1=2, epochs2=1),
                           runtime=QUIET, data=X)
    assert len(history) == 3 and model.variance == "fixed"
    assert all(h["sigma2"] == pytest.approx(0.5) for h in history)


def test_eps_extends_a_stage_until_the_elbo_settles():
    # A huge ε₁ is met as soon as δ_ELBO exists (epoch 2); ε₁ = -inf never is, so the stage runs
    # max_extra_epochs more.
    _, h = train(TrainConfig(**SMALL, epochs1=2, epochs2=0, eps1=1e9), runtime=QUIET, data=X)
    assert len(h) == 2
    _, h = train(TrainConfig(**SMALL, epochs1=1, epochs2=0, eps1=-float("inf"), max_extra_epochs=2),
                 runtime=QUIET, data=X)
    assert len(h) == 3


def test_defaults_train_what_the_appendix_tables_say():
    """B.1: code 16, 16 + 14 epochs, batch 256, lr 5e-4; B.2 (CelebA): code 256, 75 + 20 epochs."""
    for config, code, epochs, size in ((TrainConfig(), 16, (16, 14), 28),
                                       (TrainConfig(dataset="celeba"), 256, (75, 20), 128)):
        model = VAE.from_config(config)
        assert model.encoder.fc_mu.out_features == code and model.image_size == size
        assert [(s, n) for s, n, _ in stages(config)] == [(1, epochs[0]), (2, epochs[1])]
        assert (config.batch_size, config.lr) == (256, 5e-4)
    assert stages(TrainConfig(method="vae")) == [(1, 30, None)]  # a baseline: one stage, the same total


@pytest.mark.parametrize("bad,match", [
    (dict(method="magic"), "method 'magic'"), (dict(method="fixed", sigma2=0.0), "sigma2 must be a positive"),
    (dict(sigma2=0.3), "method sigma learns σ²"),
    (dict(latent_dim=0), "latent_dim must be >= 1"), (dict(dataset="cifar"), "dataset 'cifar'"),
])
def test_bad_config_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_closed_form_freezes_eq_10_over_the_whole_training_set_not_the_last_batch():
    cfg = TrainConfig(**SMALL, epochs1=2, epochs2=0, sigma_update="closed_form")
    model, history = train(cfg, runtime=QUIET, data=X)
    # Eq. 10 from scratch: all 512 images in one pass, one z ~ q(z|x) per image, its noise drawn
    # as dataset_sigma2 documents (randn(N, D) from a generator seeded with the config's seed).
    eps = torch.randn(len(X), cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        mu, sigma = model.encode(X)
        mean, _ = model.decode(mu + sigma * eps)
    want = float((X.double() - mean.double()).square().sum() / X.numel())
    assert model.sigma2 == pytest.approx(want, rel=1e-5)
    assert history[-1]["sigma2_dataset"] == model.sigma2
    last = history[-1]["sigma2_last_batch"]  # what σ² was before: the last mini-batch's Eq. 10
    assert abs(last - want) > 1e-3 * want
    # The frozen value is the one stage 2 starts from, with its floor.
    two, h2 = train(TrainConfig(**{**dataclasses.asdict(cfg), "epochs2": 1}), runtime=QUIET, data=X)
    assert h2[1]["sigma2_dataset"] == model.sigma2 and two.floor == pytest.approx(0.5 * model.sigma2)


def test_adam_on_log_sigma_end_to_end(tmp_path):
    """``sigma_update="log_sigma"``: Adam moves log σ by about lr per step (the gradient keeps its
    sign while σ² is far above the reconstruction error), so σ² = exp(2 log σ) falls by about
    exp(-2·lr·steps) in stage 1; stage 2 starts from it with its floor; the run reloads as it was."""
    cfg = TrainConfig(**SMALL, epochs1=3, epochs2=1, sigma_update="log_sigma")
    model, history = train(cfg, runtime=QUIET, out_dir=tmp_path / "run", data=X)
    steps = 3 * -(-len(X) // cfg.batch_size)
    assert model.sigma_param == "log_sigma"
    sigma2_dataset = model.sigma2
    assert math.exp(-2 * cfg.lr * steps * 1.05) < sigma2_dataset < math.exp(-2 * cfg.lr * steps * 0.8)
    assert [h["stage"] for h in history] == [1, 1, 1, 2]
    assert model.variance == "pixel" and model.floor == pytest.approx(0.5 * sigma2_dataset)
    loaded, _, _ = load_run(tmp_path / "run")
    assert loaded.sigma_param == "log_sigma" and loaded.sigma2 == sigma2_dataset
    assert float(loaded.sigma) == pytest.approx(0.5 * math.log(sigma2_dataset), rel=1e-6)  # σ stored as log σ


def test_the_deferred_non_finite_check_names_the_batch_the_immediate_one_does(one_thread):
    """On a GPU the epoch reads no value per batch (``check_every_batch=False``): a NaN is found at
    the epoch's end from the finite counts, which must name the same batch as the CPU's check."""
    cfg = TrainConfig(**SMALL, epochs1=1, epochs2=0)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(cfg.seed))
    poisoned = X.clone()
    poisoned[order[3 * cfg.batch_size + 5]] = float("nan")  # in the 4th batch of the epoch
    found = {}
    for immediate in (True, False):
        torch.manual_seed(cfg.seed)
        model = VAE.from_config(cfg)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        found[immediate] = run_epoch(model, optimizer, poisoned, cfg, shuffle, check_every_batch=immediate)
    n_batches = -(-len(X) // cfg.batch_size)
    assert found[True].bad == found[False].bad == (4, n_batches, "loss or ELBO")
    assert found[True].partial is None and found[False].partial is None  # neither is a resumable stop
