"""Numbers with their uncertainty, and the one rule that turns them into a verdict.

**The rule** (stated once; the book quotes it). A claim is a difference d that the paper says is
positive (a gap, a gain, the distance to a bound). Its standard error se comes from the seeds when
there are several (the seed-to-seed std of each number / √seeds, which includes every source of
noise: training, q̂'s fit, sampling), and from the estimator alone with one seed (IWAE: over test
images; FID: bootstrap; KL: over Monte Carlo runs), which the verdict then says. Differences are
taken seed by seed, and within a seed paired where both numbers share their noise (IWAE of two
models on the same test images, image by image; FIDs against the same real features, replicate by
replicate of the same bootstrap resamples); standard errors of independent numbers combine as
√(se₁² + se₂²).

- ``holds`` when d > c·se, ``fails`` when d < -c·se, ``unresolved`` in between, and also when the
  number has no error estimate at all (one seed, no estimator: e.g. a learned σ²).
- c is the two-sided 95.45% point (that of 2 standard errors of a normal): c = 2 for an estimator's
  error (thousands of images or resamples), and Student's t with n - 1 degrees of freedom for an
  error from n seeds (:func:`critical`: 4.53 for 3 seeds, 2.32 for 10), since 2·se from 3 seeds
  would be only an ~82% interval.
- A claim about several differences (e.g. "for every method") holds when each holds, fails when
  one fails, and is unresolved otherwise; its margin is the weakest one's.

Everything here is a pure function of numbers; nothing trains or samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm, t

VERDICTS = ("holds", "fails", "unresolved")
Z = 2.0  # the number of standard errors a difference must exceed to count, for an estimator's error
LEVEL = 1 - 2 * norm.sf(Z)  # the two-sided coverage of ± Z standard errors of a normal: 95.45%


def critical(seeds: int) -> float:
    """How many standard errors a difference must exceed: ``Z`` for one seed (the estimator's
    error, over thousands of images or resamples), Student's t at the same two-sided level with
    seeds - 1 degrees of freedom for an error from the spread of several seeds."""
    if seeds < 2:
        return Z
    return float(t.ppf(1 - (1 - LEVEL) / 2, seeds - 1))


@dataclass(frozen=True)
class Estimate:
    """One number measured once per seed, with each seed's estimator standard error if it has one.

    ``mean`` and ``std`` (sample std, n - 1) are across seeds; ``se`` is what the rule uses."""

    values: tuple[float, ...]
    stderrs: tuple[float, ...] | None = None  # per seed: IWAE over images, FID bootstrap, KL MC
    offset: float = 0.0  # the constant :meth:`shift` added: non-zero for a number minus a constant

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        if self.stderrs is not None:
            object.__setattr__(self, "stderrs", tuple(float(s) for s in self.stderrs))
            if len(self.stderrs) != len(self.values):
                raise ValueError(f"{len(self.values)} values but {len(self.stderrs)} standard errors")
        if not self.values:
            raise ValueError("an Estimate needs at least one value")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """Across seeds; None with one seed."""
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def stderr(self) -> float | None:
        """The estimator's standard error of the mean over seeds, √(Σ se_s²) / n; None without one."""
        if self.stderrs is None:
            return None
        return math.sqrt(sum(s * s for s in self.stderrs)) / self.n

    @property
    def se(self) -> float | None:
        """The standard error the rule uses: across seeds with ≥ 2 of them, else the estimator's."""
        return self.std / math.sqrt(self.n) if self.n > 1 else self.stderr

    def to_json(self) -> dict:
        out = {"mean": self.mean, "std": self.std, "values": list(self.values)}
        if self.stderrs is not None:
            out["stderr"] = self.stderr
            out["stderr_per_seed"] = list(self.stderrs)
        return out

    def text(self, digits: int = 2) -> str:
        """"mean ± std (n seeds)" or, with one seed, "value ± stderr" (or the bare value)."""
        spread = self.std if self.n > 1 else self.stderr
        if spread is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {spread:.{digits}f}"

    def __sub__(self, other: Estimate) -> Estimate:
        """Seed by seed: the models of two seeds are independent, so standard errors combine."""
        if other.n != self.n:
            raise ValueError(f"cannot subtract estimates over {other.n} and {self.n} seeds")
        values = [a - b for a, b in zip(self.values, other.values, strict=True)]
        if self.stderrs is None and other.stderrs is None:
            return Estimate(values, None, self.offset - other.offset)
        sa, sb = self.stderrs or (0.0,) * self.n, other.stderrs or (0.0,) * self.n
        return Estimate(values, [math.hypot(a, b) for a, b in zip(sa, sb, strict=True)],
                        self.offset - other.offset)

    def __neg__(self) -> Estimate:
        return Estimate([-v for v in self.values], self.stderrs, -self.offset)

    def shift(self, c: float) -> Estimate:
        """This number plus the constant ``c``: what a comparison with a constant (a threshold,
        chance, a bound) decides on; :func:`positive` asks such a claim to name its threshold."""
        return Estimate([v + c for v in self.values], self.stderrs, self.offset + c)


def exact(value: float, n: int = 1) -> Estimate:
    """A constant (a bound, the paper's number) as an estimate with zero error: a claim on a
    difference with it names its threshold (:func:`positive`)."""
    return Estimate([value] * n, [0.0] * n, value)


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims, decided here: ``margin`` (in ``unit``) is the difference the claim
    says is positive, ``se`` its standard error, ``basis`` the seeds or estimator it rests on."""

    text: str
    verdict: str
    margin: float
    se: float | None
    basis: str
    unit: str = ""
    crit: float = Z  # the standard errors the margin had to exceed (:func:`critical`)
    threshold: str | None = None  # against a constant: the paper's (or our reading of its words)

    @property
    def z(self) -> float | None:
        if self.se is None:
            return None
        return math.inf if self.se == 0 else self.margin / self.se

    @property
    def strength(self) -> float | None:
        """z over the critical value: above 1 holds, below -1 fails."""
        return None if self.z is None else self.z / self.crit

    def margin_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.se is None:
            return f"{self.margin:+.3g}{unit} ({self.basis})"
        return f"{self.margin:+.3g}{unit} (± {self.se:.3g}; {self.basis})"

    def to_json(self) -> dict:
        return {"text": self.text, "verdict": self.verdict, "margin": self.margin, "se": self.se,
                "basis": self.basis, "unit": self.unit, "critical": self.crit, "threshold": self.threshold,
                "margin_text": self.margin_text()}


def basis(d: Estimate) -> str:
    if d.n > 1:
        return f"{d.n} seeds, t({d.n - 1})"
    return "1 seed, estimator error only" if d.stderr is not None else "1 seed, no error estimate"


def verdict(margin: float, se: float | None, crit: float = Z) -> str:
    """The rule: holds beyond +crit·se, fails beyond -crit·se, else (or without se) unresolved."""
    if se is None or not math.isfinite(margin) or not math.isfinite(se):
        return "unresolved"
    if margin > crit * se:
        return "holds"
    if margin < -crit * se:
        return "fails"
    return "unresolved"


def positive(text: str, d: Estimate, unit: str = "", threshold: str | None = None) -> Claim:
    """The claim "d > 0". A claim compares two measured numbers; where ``d`` is one number minus a
    constant (:meth:`Estimate.shift`), the constant must be a threshold the paper states (or our
    reading of its words), named in ``threshold``: chance and bounds, which a model that ignores z
    passes too, are checks (:func:`check`), and this refuses them."""
    if d.offset and threshold is None:
        raise ValueError(f"{text!r} compares a number with the constant {-d.offset:g}: name the threshold of "
                         "the paper's it tests (threshold=...), or show a comparison with chance or a bound "
                         "as a check (sigmavae.claims.check)")
    return _decide(text, d, unit, threshold)


def _decide(text: str, d: Estimate, unit: str = "", threshold: str | None = None) -> Claim:
    crit = critical(d.n)
    return Claim(text, verdict(d.mean, d.se, crit), d.mean, d.se, basis(d), unit, crit, threshold)


def check(text: str, d: Estimate, against: str, unit: str = "") -> dict:
    """"d > 0" against chance or a bound, which a model that ignores z would pass too: shown as a
    check labelled with what it is against, passed when it holds by the rule."""
    c = _decide(text, d, unit)
    return {"text": f"{text}: against {against}", "passed": c.verdict == "holds", "margin": c.margin_text()}


def greater(text: str, a: Estimate, b: Estimate, unit: str = "") -> Claim:
    """The claim "a > b" (independent estimates; for paired ones pass their difference to
    :func:`positive`)."""
    return positive(text, a - b, unit)


def within(text: str, d: Estimate, bound: float, unit: str = "") -> Claim:
    """The claim "|d| < bound": the margin is bound - |mean d|."""
    m = d.mean
    sign = 1.0 if m >= 0 else -1.0
    return positive(text, Estimate([bound - sign * v for v in d.values], d.stderrs, bound), unit,
                    threshold=f"|difference| < {bound:g}")


def between(text: str, x: Estimate, low: float, high: float, unit: str = "") -> Claim:
    """The claim "low < x < high": the margin is the distance to the nearer bound."""
    nearer = low if x.mean - low < high - x.mean else high
    return positive(text, x.shift(-low) if nearer == low else -(x.shift(-high)), unit,
                    threshold=f"between {low:g} and {high:g}")


def all_of(text: str, parts: Sequence[Claim]) -> Claim:
    """Holds when every part holds, fails when one fails; the margin is the weakest part's, by
    z / critical value (the one furthest from holding), and its basis names that part, so a reader
    sees which comparison the margin is."""
    if not parts:
        raise ValueError("all_of needs at least one claim")
    verdicts = {p.verdict for p in parts}
    v = "fails" if "fails" in verdicts else "holds" if verdicts == {"holds"} else "unresolved"

    def strength(p: Claim) -> tuple[float, float]:  # by z / crit; where they tie (no error, se 0), by margin
        return (-math.inf if p.strength is None else p.strength), p.margin

    weakest = min(parts, key=strength)
    named = f"{weakest.basis}; weakest: {weakest.text}" if len(parts) > 1 else weakest.basis
    return Claim(text, v, weakest.margin, weakest.se, named, weakest.unit, weakest.crit, weakest.threshold)


def unresolved(claim: Claim, reason: str) -> Claim:
    """``claim`` made unresolved, with ``reason`` beside its basis: what decides it is not the
    method (e.g. it compares with a model that learned nothing from z)."""
    return Claim(claim.text, "unresolved", claim.margin, claim.se, f"{claim.basis}; {reason}", claim.unit,
                 claim.crit, claim.threshold)
