"""The trained-model cache: keyed by config and version, trains once, never half-written."""

import subprocess
import sys
import textwrap

from sigmavae.cache import cached_run, config_key, run_dir
from sigmavae.training import TrainConfig

SMALL = dict(dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0, batch_size=128)


def test_keys_follow_the_config():
    assert config_key(TrainConfig(**SMALL)) == config_key(TrainConfig(**SMALL))
    assert config_key(TrainConfig(**SMALL)) != config_key(TrainConfig(**{**SMALL, "seed": 1}))


def test_second_call_trains_nothing(tmp_path):
    cfg = TrainConfig(**SMALL)
    first = cached_run(cfg, tmp_path, device="cpu", progress=False)
    stamp = (first / "model.pt").stat().st_mtime_ns
    assert cached_run(cfg, tmp_path, device="cpu", progress=False) == first == run_dir(cfg, tmp_path)
    assert (first / "model.pt").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.joinpath("runs").iterdir() if ".tmp-" in p.name]


def test_two_processes_train_once(tmp_path):
    script = textwrap.dedent(f"""
        import sigmavae.training as t
        from sigmavae.cache import cached_run
        calls = []
        real = t.train
        import sigmavae.cache as c
        c.train = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
        print(cached_run(t.TrainConfig(**{SMALL!r}), {str(tmp_path)!r}, device="cpu", progress=False),
              len(calls))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0][0] == outputs[1][0]  # the same run directory
    assert sorted(int(o[1]) for o in outputs) == [0, 1]  # trained by exactly one of them
