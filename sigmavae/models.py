"""The networks of appendix B.1 (MNIST, Fashion-MNIST: 28×28×1) and B.2 (CelebA: 128×128×3), and
the VAE that joins an encoder, a decoder and the decoder's variance.

Shapes are written channels-last in the paper (H×W×C) and channels-first here ([B, C, H, W]).
Every layer size is the paper's. Where we deviate, it is written down here, with the reason:

1. Posterior σ: the paper's head is ``FC_dz → ReLU``. A ReLU outputs exact zeros, and then
   log σ = -inf and the KL term is infinite. We use ``softplus`` (+1e-6) instead: same
   non-negative range, strictly positive, smooth.
2. "Symmetric padding" 28→32 is TensorFlow's ``SYMMETRIC`` mode (edge pixel repeated, like
   ``numpy.pad(mode="symmetric")``), which torch's ``F.pad`` lacks; :func:`symmetric_pad` does it.
3. 'SAME' padding of the 4×4 stride-2 convolutions is TF's (1 pixel each side for even inputs);
   torch's ``padding=1`` gives the same output size and alignment.
4. depth-to-space is ``nn.PixelShuffle``. Its channel order differs from TF's ``depth_to_space``,
   which is irrelevant because every shuffle follows a learned layer.
5. The pixel-wise variance network reads the decoder tensor the appendix labels R^{8×8×64}, i.e.
   the output of the second depth-to-space (before the ``Conv_64``). The appendix draws it with a
   shape but no layer name; this is the literal reading.
6. The encoder's ``FC_64`` has no non-linearity after it, exactly as drawn: μ and σ are two linear
   heads on a 64-d bottleneck.
7. At the stage switch the variance network's output bias is set so that σ²_k(z) starts at
   σ²_dataset (:meth:`VAE.start_pixel_variance`). The paper does not say how the module is
   initialised; a default initialisation starts at v ≈ 0.5, i.e. a jump from σ² ≈ 0.006 to 0.5
   that cost 15,000 nats of ELBO in our first MNIST run and, without a floor, ended in NaN.
8. Per-pixel variances never go below ``MIN_VARIANCE`` = 1e-10, a numerical guard (it caps one
   pixel's log-likelihood at 10.6 nats) that keeps r²/σ² and Adam's squared gradients inside fp32.
   It only matters with the floor switched off; Algorithm 1's floor is orders of magnitude above.

Appendix B.2 (CelebA) is taken as printed, at 128×128×3 (appendix A.2 resizes to 128×128, the
encoder takes 128×128×3, the decoder's strides multiply to 128 and the variance network ends at
128×128×1; only the decoder's last line prints "64×64×3", the odd one out). TensorFlow's 'SAME'
transposed convolutions (output = input × stride) are :class:`SameConvTranspose2d`:

9. Encoder: five 4×4 stride-2 'same' convs 32-64-128-256-512 (128→4) and Conv_1024 4×4 stride 2
   'valid' (4→1), leaky ReLU after each, FC_512, and the FC_dz heads (σ through softplus, as
   deviation 1): exactly as printed.
10. Decoder: FC_256, leaky ReLU, Conv_4096 1×1 on the 1×1×256 map, transposed 4×4 convs 1024
   (stride 1: 1→1, TF's 'same' crops the 4×4 result to its centre pixel), 512, 256, 128 (stride 4:
   1→4→16→64), each with batch norm and leaky ReLU, and 3 (stride 2: 64→128). A sigmoid maps the
   mean into [0, 1] like B.1's decoder (B.2 prints none): the one deviation.
11. Variance network: reads the decoder's 4×4×512 map, transposed 4×4 convs 256, 128 (stride 4,
   leaky ReLU) and 1 (stride 2) → 128×128×1, one variance per pixel shared by the three colour
   channels, through B.1's sigmoid: as printed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import IMAGE_SIZES
from .precision import autocast


def symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """TensorFlow's ``SYMMETRIC`` padding of the two spatial dims (edge pixel included)."""
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


class Encoder(nn.Module):
    """q_φ(z|x) = N(μ(x), diag σ(x)²), appendix B.1 'Encoder network'."""

    def __init__(self, latent_dim: int = 16, in_channels: int = 1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 16, 4, stride=2, padding=1), nn.ReLU(),  # 32→16
            nn.Conv2d(16, 64, 4, stride=2, padding=1), nn.ReLU(),  # 16→8
            nn.Conv2d(64, 256, 4, stride=2, padding=1), nn.ReLU(),  # 8→4
        )
        self.fc = nn.Linear(4 * 4 * 256, 64)
        self.fc_mu = nn.Linear(64, latent_dim)
        self.fc_sigma = nn.Linear(64, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(symmetric_pad(x, 2)).flatten(1)
        h = self.fc(h)
        return self.fc_mu(h).float(), F.softplus(self.fc_sigma(h).float()) + 1e-6  # deviation 1, in fp32


class Decoder(nn.Module):
    """g_θ(z), appendix B.1 'Decoder network'; also exposes the 8×8×64 tensor (deviation 5)."""

    def __init__(self, latent_dim: int = 16, out_channels: int = 1):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 4096)
        self.to_8x8 = nn.Sequential(
            nn.PixelShuffle(4),  # 1×1×4096 → 4×4×256
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.PixelShuffle(2),  # → 8×8×64
        )
        self.to_image = nn.Sequential(
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.PixelShuffle(2),  # → 16×16×16
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.PixelShuffle(2),  # → 32×32×4
            nn.Conv2d(4, out_channels, 5),  # 'valid' → 28×28, then the sigmoid (in fp32: mean)
        )

    def features(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(z)).view(-1, 4096, 1, 1)
        return self.to_8x8(h)

    def mean(self, features: torch.Tensor) -> torch.Tensor:
        """g_θ(z) ∈ (0, 1) from the 8×8×64 features: the sigmoid in fp32 whatever the layers ran in."""
        return torch.sigmoid(self.to_image(features).float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean(self.features(z))


class VarianceNet(nn.Module):
    """v_θ(z) ∈ (0, 1)^d, appendix B.1 'Pixel-wise variance estimator network'.

    Returns the *logit* of v; :meth:`VAE.decode` turns it into log σ²(z) with the floor of
    Algorithm 1, so that floor 0 can use the exact ``logsigmoid`` and log σ² never rounds to -inf.
    """

    def __init__(self, out_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
            nn.PixelShuffle(2),  # → 16×16×32
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.PixelShuffle(2),  # → 32×32×8
            nn.Conv2d(8, out_channels, 5),  # 'valid' → 28×28 (the Sigmoid is applied in VAE.decode)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class SameConvTranspose2d(nn.Module):
    """TensorFlow's ``conv2d_transpose`` with 'SAME' padding: output = input × stride. Torch's
    ConvTranspose2d gives (input - 1)·stride + kernel; 'SAME' removes kernel - stride of that,
    ⌊(kernel - stride)/2⌋ before and the rest after (B.2's 4×4 stride-1 layer: 1 before, 2 after)."""

    def __init__(self, cin: int, cout: int, kernel: int = 4, stride: int = 1):
        super().__init__()
        extra = max(kernel - stride, 0)
        pad = extra // 2 if extra % 2 == 0 else 0
        self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=pad)
        self.crop = extra // 2 if extra % 2 else 0  # odd total: torch pads symmetrically only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.crop:
            h, w = x.shape[-2] * self.conv.stride[0], x.shape[-1] * self.conv.stride[1]
            y = y[..., self.crop:self.crop + h, self.crop:self.crop + w]
        return y


class CelebAEncoder(nn.Module):
    """q_φ(z|x) for 128×128×3 images, appendix B.2 as printed (deviation 9)."""

    def __init__(self, latent_dim: int = 256, in_channels: int = 3):
        super().__init__()
        widths = [in_channels, 32, 64, 128, 256, 512]
        layers = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):  # 'same', stride 2: 128 → 4
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(512, 1024, 4, stride=2), nn.LeakyReLU(0.2)]  # 'valid': 4×4 → 1×1
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, 512)
        self.fc_mu = nn.Linear(512, latent_dim)
        self.fc_sigma = nn.Linear(512, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.conv(x).flatten(1))
        return self.fc_mu(h).float(), F.softplus(self.fc_sigma(h).float()) + 1e-6


def _up(cin: int, cout: int, stride: int, batch_norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [SameConvTranspose2d(cin, cout, 4, stride)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.2)]


class CelebADecoder(nn.Module):
    """g_θ(z) for 128×128×3 images, appendix B.2 as printed, with a sigmoid (deviation 10)."""

    def __init__(self, latent_dim: int = 256, out_channels: int = 3):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 256)
        self.to_4x4 = nn.Sequential(
            nn.Conv2d(256, 4096, 1),
            *_up(4096, 1024, 1),  # 1×1×1024
            *_up(1024, 512, 4),  # → 4×4×512, read by the variance network
        )
        self.to_image = nn.Sequential(
            *_up(512, 256, 4), *_up(256, 128, 4),  # → 16×16×256 → 64×64×128
            SameConvTranspose2d(128, out_channels, 4, 2),  # → 128×128×3, then the sigmoid (mean)
        )

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_4x4(F.leaky_relu(self.fc(z), 0.2).view(-1, 256, 1, 1))

    mean = Decoder.mean

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean(self.features(z))


class CelebAVarianceNet(nn.Module):
    """Logit of v_θ(z) ∈ (0, 1)^{128×128}, appendix B.2 as printed (deviation 11)."""

    def __init__(self, channels: int = 3):  # one variance per pixel, shared by the channels
        super().__init__()
        self.net = nn.Sequential(*_up(512, 256, 4, False), *_up(256, 128, 4, False),
                                 SameConvTranspose2d(128, 1, 4, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


# image size → (encoder, decoder, variance network): B.1 for 28×28, B.2 for 128×128.
ARCHITECTURES = {28: (Encoder, Decoder, VarianceNet), 128: (CelebAEncoder, CelebADecoder, CelebAVarianceNet)}

VARIANCES = ("fixed", "global", "pixel")
MIN_VARIANCE = 1e-10  # deviation 8
SIGMA_PARAMS = ("sigma", "log_sigma")


class VAE(nn.Module):
    """Encoder, decoder and the decoder's noise variance σ², in one of three modes:

    - ``fixed``: σ² is a constant (VAE: 0.5, β-VAE: 1 in the paper's framing; Eq. 8).
    - ``global``: one learned σ² for the whole dataset (Eq. 9); Eq. 10's closed form is
      :func:`sigmavae.likelihoods.optimal_sigma2`.
    - ``pixel``: σ²_k(z) = v_k(z) + floor (Eq. 11 with Algorithm 1's floor ½σ²_dataset).

    The global σ is stored as σ itself (``sigma_param="sigma"``, Algorithm 1: "σ ← 1 ... update
    σ using Adam") or as log σ. The choice is not cosmetic: Adam moves a parameter by about lr per
    step, so at lr 5e-4 log σ crawls (σ² ≥ e^{-3.8} ≈ 0.02 after MNIST's 16 × 235 steps) while σ
    reaches the ~1e-3 variances of Table 3 within a few epochs.

    ``decode(z)`` returns ``(mean, log_var)``, the two arguments of the one likelihood function
    :func:`sigmavae.likelihoods.gaussian_log_prob`. Training, ELBO and IWAE all go through it.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 1, variance: str = "global",
                 sigma2: float = 1.0, floor: float = 0.0, sigma_param: str = "sigma",
                 image_size: int = 28):
        super().__init__()
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        if sigma_param not in SIGMA_PARAMS:
            raise ValueError(f"sigma_param must be one of {SIGMA_PARAMS}, got {sigma_param!r}")
        if image_size not in ARCHITECTURES:
            raise ValueError(f"no architecture for {image_size}×{image_size} images; "
                             f"have {sorted(ARCHITECTURES)} (appendix B.1 and B.2)")
        encoder, decoder, variance_net = ARCHITECTURES[image_size]
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.encoder = encoder(latent_dim, channels)
        self.decoder = decoder(latent_dim, channels)
        self.variance_net = variance_net(channels)
        self.sigma_param = sigma_param
        # σ (or log σ) of the fixed / global modes; Algorithm 1 initialises σ at 1.
        self.sigma = nn.Parameter(torch.tensor(0.0), requires_grad=(variance == "global"))
        self.set_sigma2(sigma2)
        # The floor of the pixel mode, in variance units (½σ²_dataset in Algorithm 1): a Python
        # float, so testing or adding it never synchronises with the GPU.
        self.floor = float(floor)
        self.variance = variance
        # What the networks run in (sigmavae.precision): how, not what; set by whoever places the
        # model (training, sigmavae.cache.Store), never saved with it.
        self.precision = "fp32"

    @classmethod
    def from_config(cls, config: TrainConfig) -> VAE:
        """The untrained model ``config`` describes: B.1's or B.2's networks for its dataset, σ²
        learned from 1 (ours, Algorithm 1; stored as σ or log σ by ``sigma_update``) or fixed at
        the method's σ². With ``sigma_update="closed_form"`` σ gets no gradient: Eq. 10 sets it.
        The weights come from torch's global stream as it stands: training seeds it with
        ``config.seed`` first (:func:`sigmavae.training.train`)."""
        channels, size = IMAGE_SIZES[config.dataset]
        if config.method != "sigma":
            return cls(config.latent_dim, channels, variance="fixed", sigma2=config.sigma2, image_size=size)
        param = "log_sigma" if config.sigma_update == "log_sigma" else "sigma"  # Algorithm 1: σ ← 1
        model = cls(config.latent_dim, channels, variance="global", sigma2=config.sigma2,
                    sigma_param=param, image_size=size)
        model.sigma.requires_grad_(config.sigma_update != "closed_form")
        return model

    def log_sigma2(self) -> torch.Tensor:
        """log σ² of the fixed / global modes, a 0-d tensor that carries the gradient to σ."""
        if self.sigma_param == "log_sigma":
            return 2.0 * self.sigma
        return 2.0 * torch.log(self.sigma.abs().clamp_min(1e-6))

    @torch.no_grad()
    def set_sigma2(self, sigma2: float | torch.Tensor) -> None:
        sigma = torch.as_tensor(sigma2, dtype=torch.float32).sqrt()
        self.sigma.copy_(sigma.log() if self.sigma_param == "log_sigma" else sigma)

    @property
    def sigma2(self) -> float:
        """The global (or fixed) σ²; after stage 1 of Algorithm 1 this is σ²_dataset."""
        return float(self.log_sigma2().detach().exp())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of q_φ(z|x), in fp32 (the layers in ``self.precision``)."""
        with autocast(self.precision, x.device.type):
            return self.encoder(x)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(g_θ(z), log σ²): log σ² is a 0-d tensor in the fixed/global modes, per pixel otherwise.
        Both in fp32: the layers run in ``self.precision``, the sigmoids and the floor in fp32."""
        with autocast(self.precision, z.device.type):
            features = self.decoder.features(z)
            mean = self.decoder.mean(features)
            if self.variance != "pixel":
                return mean, self.log_sigma2()
            logits = self.variance_net(features).float()
        if self.floor < MIN_VARIANCE:  # no floor: log σ² = log v, exact even where v underflows
            return mean, F.logsigmoid(logits).clamp_min(math.log(MIN_VARIANCE))
        return mean, torch.log(torch.sigmoid(logits) + self.floor)

    def start_pixel_variance(self, floor_factor: float = 0.5) -> None:
        """Algorithm 1, stage switch: freeze σ² as σ²_dataset, add the variance network with floor
        ``floor_factor · σ²_dataset`` (0.5 in the paper; 0 disables the floor)."""
        self.use_pixel_variance(floor_factor)
        # Deviation 7: start at σ²_k(z) ≈ σ²_dataset, where stage 1 ended.
        v0 = max(self.sigma2 - self.floor, MIN_VARIANCE)
        with torch.no_grad():
            last = self.variance_net.net[-1]
            getattr(last, "conv", last).bias.fill_(math.log(v0) - math.log1p(-v0))  # logit(v0)

    def use_pixel_variance(self, floor_factor: float = 0.5) -> None:
        """The pixel mode as Algorithm 1's switch leaves it, the variance network's weights as they
        are: σ² frozen as σ²_dataset (this model's σ²), the floor ``floor_factor · σ²_dataset``. What
        a model loaded after its switch needs (:func:`sigmavae.runs.load_model`)."""
        if floor_factor < 0:
            raise ValueError(f"floor_factor must be >= 0, got {floor_factor}")
        self.sigma.requires_grad_(False)
        self.floor = floor_factor * self.sigma2
        self.variance = "pixel"
