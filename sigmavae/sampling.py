"""Distributions over the latent space to sample from: the prior p(z) and q̂(z) of Eq. 13.

All share ``sample(n, seed)`` and ``log_prob(z)`` (torch tensors in and out); the priors and q̂
are fitted with ``fit(z)``, the exact aggregate posterior with ``fit(model, x)``.

q̂(z) approximates the aggregate posterior q_φ(z) = (1/N) Σ_i q_φ(z|x_i) (Eq. 12) by a Gaussian
mixture with M full-covariance components (M = 32 for 28×28 data as in Table 1; the text says
"we often take M = 30"), fitted by scikit-learn's EM. Fitting points: **one z ~ q_φ(z|x_i) per
training image** (60,000 for MNIST). Sampling z from each posterior, rather than taking its mean
μ(x_i), makes the points an exact draw from Eq. 12's mixture, posterior widths included.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from .data import as_float
from .runtime import CorruptFileError, atomic_write

QHAT_FORMAT = "sigmavae q-hat 1"  # the "format" entry of a saved q̂: refuses any other dict


class StandardNormalPrior:
    """p(z) = N(0, I), behind the same interface as :class:`GaussianMixturePrior`."""

    def __init__(self, latent_dim: int):
        self.latent_dim = latent_dim

    def fit(self, z: torch.Tensor) -> StandardNormalPrior:
        return self

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=g)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.float().square().sum(-1) + self.latent_dim * math.log(2 * math.pi))


class GaussianMixturePrior:
    """q̂(z) = Σ_m w_m N(z; μ_m, Σ_m) (Eq. 13), scikit-learn's ``GaussianMixture`` underneath.

    ``fit`` runs scikit-learn's EM algorithm in torch (:func:`fit_gmm_torch`, ``backend="torch"``)
    on the latents' device, and fills the scikit-learn object with the result;
    ``backend="sklearn"`` runs scikit-learn's own. Both reach the same held-out likelihood
    (tests/test_sampling.py) in similar time on 2 CPU cores (0.6–1.9×, ``python bench/gmm_speed.py``);
    the torch one also runs on a GPU, which CelebA's q̂ (500 components, 50k × 256) needs.
    """

    def __init__(self, n_components: int = 32, seed: int = 0, max_iter: int = 200,
                 backend: str = "torch"):
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if backend not in ("sklearn", "torch"):
            raise ValueError(f"backend must be torch or sklearn, got {backend!r}")
        self.backend = backend
        self.gmm = GaussianMixture(n_components, covariance_type="full",
                                   random_state=seed, max_iter=max_iter)

    @property
    def latent_dim(self) -> int:
        return self.gmm.means_.shape[1]

    def fit(self, z: torch.Tensor) -> GaussianMixturePrior:
        if len(z) < self.gmm.n_components:
            raise ValueError(f"cannot fit {self.gmm.n_components} mixture components to {len(z)} "
                             "latent points; use fewer components or more points")
        if self.backend == "torch":
            fit_gmm_torch(self.gmm, z.detach())
        else:
            self.gmm.fit(z.detach().double().cpu().numpy())
        return self

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n draws, in random order. (``GaussianMixture.sample`` returns them grouped by component
        and, with an int random_state, the same draws at every call, so we draw here.)"""
        rng = np.random.default_rng(seed)
        g = self.gmm
        comp = rng.choice(len(g.weights_), size=n, p=g.weights_ / g.weights_.sum())
        eps = rng.standard_normal((n, self.latent_dim))
        chol = np.linalg.cholesky(g.covariances_)  # [M, D, D], lower
        z = g.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
        return torch.from_numpy(z).float()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.detach().reshape(-1, z.shape[-1]).double().cpu().numpy()
        out = torch.from_numpy(self.gmm.score_samples(flat)).float().to(z.device)
        return out.reshape(z.shape[:-1])

    def save(self, path: str | Path) -> Path:
        """Write the fitted q̂ to ``path`` (atomically) as a dict of plain tensors, ints, floats and
        strs, never a pickled object: :meth:`load` reads it with ``weights_only=True``, so opening a
        q̂ file someone shared cannot run their code."""
        g = self.gmm
        tensors = {name: torch.from_numpy(np.ascontiguousarray(getattr(g, name + "_")))
                   for name in ("weights", "means", "covariances", "precisions_cholesky")}
        return atomic_write(path, {
            "format": QHAT_FORMAT, **tensors, "n_components": int(g.n_components),
            "seed": int(g.random_state or 0), "max_iter": int(g.max_iter), "backend": self.backend,
            "n_iter": int(getattr(g, "n_iter_", 0)), "converged": bool(getattr(g, "converged_", False)),
            "lower_bound": float(getattr(g, "lower_bound_", math.nan)),
        })

    @classmethod
    def load(cls, path: str | Path) -> GaussianMixturePrior:
        """The q̂ :meth:`save` wrote, with the scikit-learn attributes rebuilt: ``sample`` and
        ``log_prob`` give exactly what they gave before saving. Read with ``weights_only=True``:
        a file that needs anything but plain tensors and numbers (a pickle that could run code), or
        that is not a saved q̂, is refused with :class:`sigmavae.runtime.CorruptFileError`."""
        path = Path(path)
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(d, dict) or d.get("format") != QHAT_FORMAT:
                raise ValueError("not a dict written by GaussianMixturePrior.save")
            q = cls(int(d["n_components"]), seed=int(d["seed"]), max_iter=int(d["max_iter"]),
                    backend=str(d["backend"]))
            g = q.gmm
            for name in ("weights", "means", "covariances", "precisions_cholesky"):
                value = d[name]
                if not isinstance(value, torch.Tensor) or value.dtype != torch.float64:
                    raise ValueError(f"{name} is not a float64 tensor")
                setattr(g, name + "_", value.numpy())
            m, dim = g.means_.shape
            shapes = [g.weights_.shape, g.covariances_.shape, g.precisions_cholesky_.shape]
            if m != g.n_components or shapes != [(m,), (m, dim, dim), (m, dim, dim)]:
                raise ValueError(f"shapes {[g.means_.shape, *shapes]} do not make a {g.n_components}-"
                                 "component mixture")
            # What fit_gmm_torch (or scikit-learn's fit) sets besides the four arrays.
            g.n_iter_, g.converged_ = int(d["n_iter"]), bool(d["converged"])
            g.lower_bound_, g.n_features_in_ = float(d["lower_bound"]), dim
        except Exception as err:  # unpickling refused, zip damaged, keys or shapes wrong: unusable
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise CorruptFileError(
                f"refused {path}: it is not a plain-tensor q̂ file ({reason}); loading anything else "
                "would need full unpickling, which could run code. Delete it, and `sigmavae evaluate` "
                "or `sigmavae sample` fits and writes it again") from err
        g.precisions_ = g.precisions_cholesky_ @ g.precisions_cholesky_.transpose(0, 2, 1)
        return q


@torch.no_grad()
def fit_gmm_torch(gmm: GaussianMixture, z: torch.Tensor, chunk: int | None = None) -> GaussianMixture:
    """scikit-learn's full-covariance EM, in torch on ``z``'s device (float64), into ``gmm``.

    Same model and steps as ``GaussianMixture.fit``: responsibilities initialised from k-means
    labels (k-means++ seeding, then Lloyd iterations; seeded by ``gmm.random_state``), then M and E
    steps until the mean log-likelihood changes by less than
    ``gmm.tol``, at most ``gmm.max_iter`` times, ``gmm.reg_covar`` added to every covariance's
    diagonal. Components are processed ``chunk`` at a time ([chunk, N, D] in memory; default:
    as many as fit in 16 MB, which keeps a CPU's work in its caches).
    """
    x = z.double()
    (n, d), m = x.shape, gmm.n_components
    g = torch.Generator(device=x.device).manual_seed(int(gmm.random_state or 0))
    first = torch.randint(n, (1,), generator=g, device=x.device)
    centres, d2 = [x[first]], (x - x[first]).square().sum(1)
    for _ in range(1, m):  # k-means++ seeding: each centre drawn ∝ squared distance to the nearest
        new = x[torch.multinomial(d2.clamp_min(1e-300), 1, generator=g)]  # duplicates: still a draw
        centres.append(new)
        d2 = torch.minimum(d2, (x - new).square().sum(1))
    centres, labels = torch.cat(centres), None
    for _ in range(300):  # Lloyd's k-means until no label changes (scikit-learn: max_iter 300)
        new_labels = torch.cdist(x, centres).argmin(1)
        if labels is not None and torch.equal(new_labels, labels):
            break
        labels = new_labels
        resp = torch.nn.functional.one_hot(labels, m).double()
        counts = resp.sum(0)[:, None]
        centres = torch.where(counts > 0, resp.T @ x / counts.clamp_min(1), centres)
    resp = torch.nn.functional.one_hot(labels, m).double()
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    # Centred once, so that the second moments below lose nothing to cancellation (float64).
    centre = x.mean(0)
    x = x - centre
    chunk = chunk or max(1, (1 << 21) // (n * d))  # [chunk, N, D] float64 within 16 MB: in cache
    previous, converged = -math.inf, False
    for step in range(1, gmm.max_iter + 1):
        gmm.n_iter_ = step
        nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps  # M step
        weights, means = nk / n, resp.T @ x / nk[:, None]
        second = torch.empty(m, d, d, dtype=x.dtype, device=x.device)  # Σ_i r_ik x_i x_iᵀ
        for c in range(0, m, chunk):
            second[c:c + chunk] = (resp.T[c:c + chunk, :, None] * x).transpose(1, 2) @ x
        cov = second / nk[:, None, None] - means[:, :, None] * means[:, None, :] + gmm.reg_covar * eye
        chol = torch.linalg.cholesky(cov)
        # E step as scikit-learn's: ‖(x - μ_k)ᵀ P_k‖² with P_k = L_k⁻ᵀ, one matmul per component.
        prec_chol = torch.linalg.solve_triangular(chol, eye.expand(m, d, d), upper=False).transpose(1, 2)
        shift = (means[:, None, :] @ prec_chol).squeeze(1)  # [M, D]: μ_kᵀ P_k
        log_prob = torch.empty(n, m, dtype=x.dtype, device=x.device)
        for c in range(0, m, chunk):
            maha = (x @ prec_chol[c:c + chunk] - shift[c:c + chunk, None]).square().sum(-1)  # [c, N]
            log_prob[:, c:c + chunk] = maha.T
        log_det = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(-1)
        log_prob = -0.5 * (log_prob + log_det + d * math.log(2 * math.pi)) + weights.log()
        ll = torch.logsumexp(log_prob, 1)
        resp = (log_prob - ll[:, None]).exp()
        mean_ll = float(ll.mean())
        if abs(mean_ll - previous) < gmm.tol:
            converged = True
            break
        previous = mean_ll
    means = means + centre
    gmm.weights_, gmm.means_, gmm.covariances_, gmm.precisions_cholesky_ = (
        t.cpu().numpy() for t in (weights, means, cov, prec_chol))
    gmm.precisions_ = gmm.precisions_cholesky_ @ gmm.precisions_cholesky_.transpose(0, 2, 1)
    gmm.converged_, gmm.lower_bound_, gmm.n_features_in_ = converged, mean_ll, d
    return gmm


@torch.no_grad()
def encode_samples(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> torch.Tensor:
    """One z ~ q_φ(z|x_i) per image: the points q̂ is fitted on (draws from Eq. 12)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for xb in x.split(batch_size):
        mu, sigma = model.encode(as_float(xb))
        out.append(mu + sigma * torch.randn(mu.shape, generator=g, device=mu.device))
    return torch.cat(out)


def fit_aggregate_posterior(model, x: torch.Tensor, n_components: int = 32, seed: int = 0,
                            points: int | None = None) -> GaussianMixturePrior:
    """q̂(z) of Eq. 13, fitted on one posterior sample (drawn with ``seed``) per image of ``x``
    (the training set), or per image of a random subset of ``points`` images drawn with ``seed``
    (CelebA: 50k, as the paper's Table 4 text). The fit's wall time is in ``fit_seconds``."""
    if points is not None and points < len(x):
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=g)[:points].to(x.device)]
    if n_components > len(x):  # refused before encoding anything
        raise ValueError(f"cannot fit {n_components} mixture components to {len(x)} training images; "
                         "use fewer components (--components) or more images")
    start = time.perf_counter()
    qhat = GaussianMixturePrior(n_components, seed=seed).fit(encode_samples(model, x, seed=seed))
    qhat.fit_seconds = time.perf_counter() - start
    return qhat


class AggregatePosterior:
    """The exact aggregate posterior of Eq. 12, q_φ(z) = (1/N) Σ_i N(z; μ(x_i), σ²(x_i)): a mixture
    of one Gaussian per image (what Table 1's first row shows and q̂ approximates)."""

    def fit(self, model, x: torch.Tensor, batch_size: int = 1000) -> AggregatePosterior:
        with torch.no_grad():
            stats = [model.encode(as_float(xb)) for xb in x.split(batch_size)]
        self.mu = torch.cat([m for m, _ in stats]).double().cpu()
        self.sigma = torch.cat([s for _, s in stats]).double().cpu()
        return self

    @property
    def latent_dim(self) -> int:
        return self.mu.shape[1]

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        i = torch.randint(len(self.mu), (n,), generator=g)
        eps = torch.randn(n, self.latent_dim, generator=g, dtype=torch.float64)
        return (self.mu[i] + self.sigma[i] * eps).float()

    def log_prob(self, z: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """log q_φ(z) for [..., D] points: a log-sum-exp over all N components, ``chunk`` points
        at a time ([chunk, N, D] doubles in memory)."""
        flat = z.detach().reshape(-1, z.shape[-1]).double().cpu()
        log_norm = -(self.sigma.log().sum(-1) + 0.5 * self.latent_dim * math.log(2 * math.pi))
        out = []
        for zb in flat.split(chunk):
            sq = ((zb[:, None, :] - self.mu) / self.sigma).square().sum(-1)  # [chunk, N]
            out.append(torch.logsumexp(log_norm - 0.5 * sq, dim=1) - math.log(len(self.mu)))
        return torch.cat(out).float().to(z.device).reshape(z.shape[:-1])
