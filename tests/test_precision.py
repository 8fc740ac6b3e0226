"""Issue 20: bf16 for the networks' convolutions and products where the hardware has it; the
likelihood, σ², floor, KL, statistics, parameters and Adam's state stay fp32; each run and score
records its precision, which is not part of a cache key."""

import json

import pytest
import torch

from sigmavae import precision as prec
from sigmavae.cache import Store, run_dir
from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.models import VAE
from sigmavae.objectives import OBJECTIVES, elbo_terms
from sigmavae.runs import CHECKPOINT, TrainingInterrupted
from sigmavae.runtime import Runtime
from sigmavae.training import train

X = load_dataset("digits", "train")[:96]
CFG = TrainConfig(dataset="digits", latent_dim=4, batch_size=16, epochs1=1, epochs2=1)
CPU = torch.device("cpu")


@pytest.mark.parametrize("amx,avx512_bf16,want", [(True, False, "bf16"), (False, True, "bf16"),
                                                  (False, False, "fp32")])
def test_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch, amx, avx512_bf16, want):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.delenv("SIGMAVAE_PRECISION")
    assert prec.resolve_precision(None, CPU) == prec.resolve_precision("auto", CPU) == want
    assert prec.resolve_precision("fp32", CPU) == "fp32" and prec.resolve_precision("bf16", CPU) == "bf16"
    monkeypatch.setenv("SIGMAVAE_PRECISION", "fp32")
    assert prec.resolve_precision(None, CPU) == "fp32"


@pytest.mark.parametrize("major,minor,want", [(7, 5, "fp32"), (8, 0, "bf16"), (9, 0, "bf16")])
def test_auto_takes_bf16_on_a_gpu_only_where_it_is_native(monkeypatch, major, minor, want):
    """A T4 (compute capability 7.5, Colab's free GPU) emulates bf16: torch's default check says
    yes there, and training would be slower than in fp32. From 8.0 (Ampere) bf16 is native."""
    monkeypatch.delenv("SIGMAVAE_PRECISION", raising=False)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: type("Props", (), {"major": major, "minor": minor})())
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)  # emulation
    assert torch.cuda.is_bf16_supported()  # torch's default counts the emulation
    assert prec.resolve_precision("auto", torch.device("cuda")) == want


def test_auto_trains_in_what_the_machine_has(monkeypatch):
    monkeypatch.delenv("SIGMAVAE_PRECISION")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    model, _ = train(CFG, runtime=Runtime(device="cpu", progress=False), data=X[:32])
    assert model.precision == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    model, _ = train(CFG, runtime=Runtime(device="auto" if not torch.cuda.is_available() else "cpu",
                                          progress=False), data=X[:32])
    assert model.precision == "bf16"


def test_a_bad_precision_is_refused_saying_what_exists(monkeypatch):
    with pytest.raises(ValueError, match="precision 'fp16' is not one of auto, bf16, fp32"):
        prec.resolve_precision("fp16", CPU)
    monkeypatch.setenv("SIGMAVAE_PRECISION", "half")
    with pytest.raises(ValueError, match=r"'half' \(from \$SIGMAVAE_PRECISION\)"):
        Store(runtime=Runtime(device="cpu"))


def test_bf16_runs_the_layers_in_bf16_and_the_mathematics_in_fp32():
    torch.manual_seed(0)
    model = VAE(4)
    model.start_pixel_variance(0.5)
    seen = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    x = X[:16].float() / 255
    eps = torch.randn(16, 4)
    t32 = elbo_terms(model, x, eps=eps)
    assert set(seen) == {torch.float32}
    seen.clear()
    model.precision = "bf16"
    t16 = elbo_terms(model, x, eps=eps)
    assert set(seen) == {torch.bfloat16}  # every convolution and linear layer
    for name in ("recon", "kl", "log_var", "mu", "sigma", "z", "mean"):
        assert getattr(t16, name).dtype == torch.float32, name  # what the likelihood and KL are made of
    # bf16 keeps 8 bits of mantissa: the ELBO moves by well under 1% (here a random model)
    assert torch.allclose(t16.elbo, t32.elbo, rtol=1e-2)
    assert float((t16.mean - t32.mean).detach().abs().max()) < 2e-2
    t16.elbo.mean().backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def test_a_bf16_run_records_its_precision_and_shares_the_cache_key(tmp_path, monkeypatch):
    import sigmavae.training as training

    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: X)
    here = Runtime(device="cpu", progress=False, precision="bf16", cache_dir=tmp_path)
    store = Store(runtime=here)
    model = store.model(CFG)
    history = json.loads((run_dir(CFG, tmp_path) / "history.json").read_text())
    assert model.precision == "bf16" and all(torch.isfinite(torch.tensor(h["elbo"])) for h in history)
    meta = json.loads((run_dir(CFG, tmp_path) / "run.json").read_text())
    assert meta["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights themselves: fp32
    store.score(CFG, "test", {"k": 1}, lambda: {"v": 1.0})
    # Precision is how, not what: an fp32 store finds the same entry, trains and scores nothing
    fp32 = Store(runtime=Runtime(device="cpu", progress=False, precision="fp32", cache_dir=tmp_path))
    again = fp32.model(CFG)
    assert fp32.score(CFG, "test", {"k": 1}, lambda: {"v": 2.0}) == {"v": 1.0}  # read back, not redone
    assert not fp32.computed
    assert fp32.provenance() == {"trained": {"bf16": 1}, "scored": {"bf16": 1}}
    assert again.precision == "fp32"  # evaluated in the store's precision


def test_a_run_does_not_continue_in_another_precision(tmp_path, monkeypatch):

    real, calls = OBJECTIVES["sigma"], []

    def objective(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setitem(OBJECTIVES, "sigma", objective)
    bf16 = Runtime(device="cpu", progress=False, precision="bf16")
    with pytest.raises(TrainingInterrupted):
        train(CFG, out_dir=tmp_path, runtime=bf16, data=X)
    monkeypatch.undo()
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["precision"] == "bf16"
    with pytest.raises(ValueError, match="was trained in bf16, this run would continue in fp32: resume with "
                                         "--precision bf16"):
        train(CFG, out_dir=tmp_path, runtime=Runtime(device="cpu", precision="fp32"), data=X, resume=True)
    train(CFG, out_dir=tmp_path, runtime=bf16, data=X, resume=True)
    assert json.loads((tmp_path / "run.json").read_text())["precision"] == "bf16"
