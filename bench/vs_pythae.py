"""One training epoch of the same VAE by this project's loop and by pythae's trainer, alternately.

    python bench/vs_pythae.py [--n 15360] [--rounds 2] [--data-root ../shared/data]

Both train appendix B.1's encoder and decoder (sigmavae.models.VAE, latent 16) with Adam, lr 5e-4,
batch 256, on the same images, for the same objective: pythae's VAE with its "mse" reconstruction
loss is the Gaussian ELBO with σ² = 1, i.e. our ``beta-vae`` method (σ² = 1, β = 1). Ours is
``sigmavae.epoch.run_epoch`` as ``train`` runs it; pythae's is ``BaseTrainer.train_step``, its
epoch. Prints each epoch's seconds, then ``speedup_vs_pythae`` (median pythae ÷ median ours).

pythae (0.1.2, from PyPI) is installed for this benchmark only, on first use, into
``<cache>/pythae-site`` (``$SIGMAVAE_CACHE``, default ~/.cache/sigmavae), without its
dependencies: the ones missing here are named, and its ``dataclasses`` backport, which would
shadow the standard library's, is left out.
"""

from __future__ import annotations

import argparse
import site
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.epoch import run_epoch
from sigmavae.models import VAE
from sigmavae.runtime import Runtime
from sigmavae.training import place

PYTHAE = ["pythae==0.1.2", "imageio", "pydantic==2.9.2", "pydantic-core==2.23.4", "annotated-types"]


def import_pythae():
    target = Runtime().cache / "pythae-site"
    if not (target / "pythae").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(target), *PYTHAE], check=True)
    site.addsitedir(str(target))  # appended after the standard library and this environment
    import pythae.models
    import pythae.trainers
    return pythae


def pythae_trainer(pythae, vae: VAE, x: torch.Tensor, out_dir: str):
    from pythae.data.datasets import BaseDataset
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            mu, sigma = self.vae.encode(x)
            return ModelOutput(embedding=mu, log_covariance=2 * sigma.log())

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return ModelOutput(reconstruction=self.vae.decode(z)[0])

    config = pythae.models.VAEConfig(input_dim=(1, 28, 28), latent_dim=vae.latent_dim,
                                     reconstruction_loss="mse")
    model = pythae.models.VAE(config, encoder=Encoder(), decoder=Decoder())
    training = pythae.trainers.BaseTrainerConfig(
        output_dir=out_dir, num_epochs=1, learning_rate=5e-4, per_device_train_batch_size=256,
        optimizer_cls="Adam", train_dataloader_num_workers=0, no_cuda=not torch.cuda.is_available())
    data = BaseDataset(x, torch.zeros(len(x)))
    trainer = pythae.trainers.BaseTrainer(model, data, training_config=training)
    trainer.prepare_training()  # what its train() does before the first epoch
    # Its per-batch progress bar would bury the timings, and ours runs without one.
    handler = trainer.callback_handler
    handler.callbacks = [c for c in handler.callbacks if type(c).__name__ != "ProgressBarCallback"]
    return trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=15_360, help="training images per epoch (60 batches)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--data-root", default=None, help="real MNIST there; else random images")
    args = p.parse_args()
    pythae = import_pythae()
    x = (load_dataset("mnist", "train", args.data_root)[: args.n] if args.data_root
         else torch.rand(args.n, 1, 28, 28))
    config = TrainConfig(method="beta-vae")
    torch.manual_seed(0)
    ours, ours_x = place(VAE(16), x, "cpu" if not torch.cuda.is_available() else "cuda")
    opt = torch.optim.Adam(ours.parameters(), lr=config.lr)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pythae_trainer(pythae, VAE(16), x, tmp)
        print(f"{args.n} images, batch 256, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"pythae {pythae.__version__ if hasattr(pythae, '__version__') else '0.1.2'}")
        times = {"ours": [], "pythae": []}
        for r in range(args.rounds):
            start = time.perf_counter()
            stats = run_epoch(ours, opt, ours_x, config, torch.Generator().manual_seed(r))
            times["ours"].append(time.perf_counter() - start)
            start = time.perf_counter()
            loss = trainer.train_step(r + 1)
            times["pythae"].append(time.perf_counter() - start)
            print(f"round {r + 1}: ours {times['ours'][-1]:.1f} s (loss {stats.loss:.1f}), "
                  f"pythae {times['pythae'][-1]:.1f} s (loss {loss:.1f})")
    print(f"speedup_vs_pythae {statistics.median(times['pythae']) / statistics.median(times['ours']):.2f}")


if __name__ == "__main__":
    main()
