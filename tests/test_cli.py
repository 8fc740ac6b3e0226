"""The `sigmavae` command end to end on the embedded digits data."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sigmavae.cache import run_dir
from sigmavae.cli import main
from sigmavae.config import TrainConfig
from sigmavae.objectives import OBJECTIVES


def test_train_evaluate_sample_on_digits(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs1", "1", "--epochs2", "1", "--latent-dim", "4",
                 "--batch-size", "128", "--device", "cpu", "--quiet", "--out", str(run)]) == 0
    assert {p.name for p in run.iterdir()} == {"config.json", "run.json", "history.json", "model.pt"}
    assert main(["evaluate", str(run), "--iwae-n", "50", "--components", "4", "--kl-samples", "500",
                 "--kl-runs", "2", "--device", "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after the train summary line
    assert (run / "qhat-4-seed0.pt").is_file() and not list(run.glob("*.pkl"))  # q̂ as plain tensors
    saved = json.loads((run / "metrics.json").read_text())
    assert printed == saved
    for key in ("elbo", "elbo_stderr", "iwae_prior", "iwae_prior_stderr", "iwae_qhat", "iwae_qhat_stderr",
                "iwae_gain", "iwae_gain_stderr", "kl_qhat_prior", "kl_qhat_prior_stderr", "sigma2_dataset"):
        assert isinstance(saved[key], float) and math.isfinite(saved[key]), key
    assert saved["iwae_gain"] == pytest.approx(saved["iwae_qhat"] - saved["iwae_prior"], abs=1e-3)
    # the notebooks' cache layout in the run directory: a second evaluate computes nothing
    assert {p.name.split("-")[0] for p in (run / "scores").iterdir()} == {"elbo", "iwae", "kl"}
    stamps = {p: p.stat().st_mtime_ns for p in (run / "scores").iterdir()}
    assert main(["evaluate", str(run), "--iwae-n", "50", "--components", "4", "--kl-samples", "500",
                 "--kl-runs", "2", "--device", "cpu"]) == 0
    shown = capsys.readouterr().out
    assert "iwae_qhat" in shown and "iwae_qhat_stderr" not in shown and " ± " in shown  # value ± error
    assert {p: p.stat().st_mtime_ns for p in (run / "scores").iterdir()} == stamps
    for source in ("qhat", "prior"):
        out = tmp_path / f"{source}.png"
        assert main(["sample", str(run), "--from", source, "-n", "20", "--components", "4",
                     "--device", "cpu", "--out", str(out)]) == 0
        assert Image.open(out).size == (10 * 30 + 2, 2 * 30 + 2)  # 10 per row, 2 px padding


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a sigmavae run directory: missing config.json" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "MNIST" in err and "SIGMAVAE_DATA" in err and "Traceback" not in err
    assert main(["train", "--method", "fixed", "--sigma2", "-1", "--dataset", "digits", "--out",
                 str(tmp_path / "r")]) == 2
    assert "sigma2 must be a positive number" in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "sigmavae"  # written by `pip install -e .`
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    import sigmavae

    assert out.stdout.strip() == f"sigmavae {sigmavae.__version__}"  # this tree's package, installed


def test_evaluate_adds_classifier_fid(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--method", "wae", "--epochs1", "1", "--epochs2", "0",
                 "--latent-dim", "4", "--device", "cpu", "--quiet", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--iwae-n", "20", "--components", "4", "--kl-samples", "200",
                 "--kl-runs", "2", "--fid", "classifier", "--fid-n", "200", "--device", "cpu"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["fid_kind"] == "classifier FID" and m["fid_n"] == 200 and m["method"] == "wae"
    assert m["fid_real"] < m["fid_prior"] and m["fid_real"] < m["fid_qhat"]  # one epoch is no data
    assert all(m[f"fid_{s}_std"] > 0 for s in ("qhat", "prior", "real"))  # ± the bootstrap std
    assert 0.8 < m["fid_classifier_test_accuracy"] <= 1


def test_reproduce_refuses_a_misspelt_parameter_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(tmp_path / "cache"))
    notebooks = Path(__file__).parents[1] / "notebooks"
    before = {p: p.stat().st_mtime_ns for p in notebooks.glob("*.ipynb")}
    assert main(["reproduce", "--profile", "smoke", "--only", "table3", "--notebooks", str(notebooks),
                 "-p", "epochz", "3"]) == 2
    err = capsys.readouterr().err
    assert "'epochz' is not a parameter (did you mean 'epochs" in err and len(err.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in notebooks.glob("*.ipynb")} == before  # nothing executed
    assert not (tmp_path / "cache").exists()


def test_evaluate_refuses_celeba_with_the_classifier_fid_before_any_work(tmp_path, capsys, monkeypatch):
    """The notebooks' refusal, from the CLI: read from config.json before the model is opened."""
    import dataclasses

    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig(dataset="celeba"))))
    (run / "history.json").write_text("[]")
    (run / "model.pt").write_bytes(b"never opened")
    for fid in ("classifier", "auto"):
        assert main(["evaluate", str(run), "--fid", fid, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "CelebA's FID needs Inception" in err and "--fid-weights PATH" in err
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "history.json", "model.pt"]


def test_reproduce_runs_notebooks_in_order_and_refuses_unknown_names(tmp_path, capsys, monkeypatch):
    from sigmavae.artefacts import required_configs, resolve

    monkeypatch.setenv("SIGMAVAE_CACHE", str(tmp_path / "cache"))
    notebooks = Path(__file__).parents[1] / "notebooks"
    out = tmp_path / "executed"
    assert main(["reproduce", "--profile", "smoke", "--only", "figure3_4,table3", "--notebooks",
                 str(notebooks), "--out", str(out), "--jobs", "2", "-p", "results_dir", str(tmp_path),
                 "-p", "data_root", "None"]) == 0
    printed = capsys.readouterr().out
    assert "figure3_4: done in" in printed and "total" in printed
    # --jobs trained up front exactly the models the notebooks then used (they trained none)
    params = {a: resolve(a, profile="smoke") for a in ("table3", "figure3_4")}
    wanted = {run_dir(c, tmp_path / "cache").name for c in required_configs(list(params), params)}
    cached = {d.name for d in (tmp_path / "cache" / "runs").iterdir() if d.is_dir()}
    assert wanted == cached and len(wanted) == 5  # Table 3's five; Figures 3-4 reuse ours
    order = [printed.index(s) for s in ("training: done", "table3: running", "figure3_4: running")]
    assert order == sorted(order)
    assert (out / "figure3_4.ipynb").is_file() and not (out / "table2.ipynb").exists()
    saved = json.loads((tmp_path / "figure3_4-digits.json").read_text())
    assert saved["profile"] == "smoke" and saved["seeds"] == [0]
    assert main(["reproduce", "--only", "table9", "--notebooks", str(notebooks)]) == 2
    assert "unknown notebook(s) table9; choose from table1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--profile", "fast", "--notebooks", str(notebooks)])
    assert exit_.value.code == 2 and "choose from 'smoke', 'quick', 'paper'" in capsys.readouterr().err
    args = ["reproduce", "--profile", "smoke", "--notebooks", str(notebooks), "-p", "seeds", "[0, 0]"]
    assert main(args) == 2
    assert "seeds = [0, 0] repeats a value" in capsys.readouterr().err  # refused before anything ran


def small_digits(monkeypatch):
    """`sigmavae train` on 96 digits: the CLI path, at the speed of a unit test."""
    import sigmavae.training as training

    real = training.load_dataset
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: real(*a, **k)[:96])
    return ["train", "--dataset", "digits", "--epochs1", "1", "--epochs2", "1", "--latent-dim", "4",
            "--batch-size", "32", "--device", "cpu", "--quiet"]


def test_sigterm_checkpoints_and_resume_continues(tmp_path, monkeypatch, capsys):
    import os
    import signal


    args = small_digits(monkeypatch) + ["--out", str(tmp_path / "run")]
    real, calls = OBJECTIVES["sigma"], []

    def objective(*a, **kw):  # SIGTERM during the 2nd batch of stage 2 (3 batches an epoch)
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setitem(OBJECTIVES, "sigma", objective)
    assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SIGTERM: saved" in err and "--resume" in err
    assert "(after batch 2 of epoch 2)" in err
    monkeypatch.setitem(OBJECTIVES, "sigma", real)
    assert main(args) == 2  # a partial run is never started over silently
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"config.json", "run.json", "history.json",
                                                              "model.pt"}
    assert main(args + ["--resume"]) == 0  # finished: kept as it is
    assert "trained 2 epochs" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--latent-dim", "0"], "latent_dim must be >= 1"),
    (["--method", "fixed", "--sigma2", "0"], "sigma2 must be a positive number"),
    (["--method", "vae", "--sigma2", "2"], "for σ² = 2.0 use method 'fixed'"),
    (["--variance-floor", "-1"], "variance_floor must be >= 0"),
])
def test_bad_train_options_are_refused_before_any_compute(tmp_path, monkeypatch, capsys, argv, message):
    import sigmavae.training as training

    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: pytest.fail("loaded data"))
    assert main(["train", "--dataset", "digits", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_unknown_dataset_or_method_lists_the_choices(capsys):
    for argv in (["--dataset", "cifar"], ["--method", "magic"]):
        with pytest.raises(SystemExit) as exit_:
            main(["train", *argv, "--out", "r"])
        assert exit_.value.code == 2
        assert "invalid choice" in capsys.readouterr().err  # argparse names the valid ones


def test_bad_run_directories_and_components_are_refused(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = small_digits(monkeypatch)
    assert main(args + ["--epochs2", "0", "--out", str(run)]) == 0
    assert main(args + ["--epochs2", "0", "--seed", "1", "--out", str(run)]) == 2  # another config
    err = capsys.readouterr().err
    assert "another config (seed 0 there, 1 here)" in err and err.count("\n") == 1
    assert main(["evaluate", str(run), "--components", "5000", "--device", "cpu"]) == 2
    assert "cannot fit 5000 mixture components to 1500" in capsys.readouterr().err
    assert main(["sample", str(run), "--components", "5000", "--device", "cpu", "--out",
                 str(tmp_path / "s.png")]) == 2
    assert "use fewer components" in capsys.readouterr().err
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:500])
    assert main(["evaluate", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "model.pt is corrupt or truncated" in err and "train it again" in err and err.count("\n") == 1


def test_every_train_config_field_is_a_train_option_with_help():
    import argparse
    import dataclasses

    from sigmavae.cli import _parser
    from sigmavae.config import TrainConfig

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.dest: a for a in commands.choices["train"]._actions}
    for f in dataclasses.fields(TrainConfig):
        action = options[f.name]
        assert action.option_strings == ["--" + f.name.replace("_", "-")], f.name
        assert action.help and action.help.strip(), f.name
        assert action.default == f.default and action.choices == f.metadata.get("choices"), f.name
    args = _parser().parse_args(["train", "--out", "r", "--sigma2", "0.25", "--epochs2", "0",
                                 "--method", "fixed", "--dip-type", "ii"])
    assert args.sigma2 == 0.25 and args.epochs2 == 0 and args.dip_type == "ii" and args.latent_dim is None


class Hostile:
    """Unpickled, it would create ``path`` (standing for any code a pickle can run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_sample_never_unpickles_a_planted_qhat_or_legacy_gmm_file(tmp_path, monkeypatch, capsys):
    import pickle

    import torch

    from sigmavae.sampling import GaussianMixturePrior

    run, marker, png = tmp_path / "run", tmp_path / "code-ran", tmp_path / "s.png"
    assert main(small_digits(monkeypatch) + ["--epochs2", "0", "--out", str(run)]) == 0
    sample = ["sample", str(run), "-n", "10", "--device", "cpu", "--out", str(png)]
    torch.save(Hostile(marker), run / "qhat-32-seed0.pt")  # the name `sample` reads (32: digits' M)
    capsys.readouterr()
    assert main(sample) == 2
    err = capsys.readouterr().err
    assert f"refused {run / 'qhat-32-seed0.pt'}: it is not a plain-tensor q̂ file" in err
    assert "could run code" in err and "Delete it" in err and err.count("\n") == 1
    assert not marker.exists() and not png.exists()
    (run / "qhat-32-seed0.pt").unlink()
    (run / "gmm-32.pkl").write_bytes(pickle.dumps(Hostile(marker)))  # what older versions wrote
    assert main(sample) == 0
    err = capsys.readouterr().err
    assert "ignored gmm-32.pkl" in err and "unpickling could run code" in err and err.count("\n") == 1
    assert not marker.exists() and png.is_file()
    assert GaussianMixturePrior.load(run / "qhat-32-seed0.pt").gmm.n_components == 32  # fitted, saved


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "digits", "--device", "tpu", "--out", "{tmp}/r"], "device 'tpu' is not a device"),
    (["train", "--dataset", "digits", "--device", "cuda:7", "--out", "{tmp}/r"], "device 'cuda:7'"),
    (["train", "--dataset", "digits", "--out", "{tmp}/file"], "is a file, not a directory"),
    (["train", "--dataset", "digits", "--epochs1", "0", "--epochs2", "0", "--out", "{tmp}/r"],
     "need epochs1 >= 1"),
    (["train", "--dataset", "digits", "--method", "vae", "--epochs1", "0", "--out", "{tmp}/r"],
     "need epochs1 >= 1"),
    (["train", "--dataset", "digits", "--lr", "-1", "--out", "{tmp}/r"], "lr > 0"),
    (["sample", "{tmp}/r", "-n", "0", "--out", "{tmp}/a.png"], "-n must be >= 1, got 0"),
    (["sample", "{tmp}/r", "--out", "{tmp}"], "is a directory: pass the PNG file"),
    (["sample", "{tmp}/r", "--out", "{tmp}/file/a.png"], "is a file, not a directory"),
    (["sample", "{tmp}/none", "--out", "{tmp}/a.png"], "is not a sigmavae run directory"),
    (["evaluate", "{tmp}/r", "--iwae-k", "0"], "--iwae-k must be >= 1"),
    (["evaluate", "{tmp}/r", "--fid-n", "1"], "--fid-n must be >= 2"),
    (["reproduce", "--jobs", "0"], "--jobs must be >= 1"),
    (["reproduce", "--profile", "smoke", "-p", "epochs1", "three"],
     "epochs1 = 'three' is a str, expected int"),
])
def test_bad_input_is_a_message_not_a_traceback(argv, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    (tmp_path / "r").mkdir()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
