"""Do the fast tests catch a broken loop? Each mutation below breaks one thing the paper's
mathematics or the training loop rests on; the named fast tests run against the mutated library
and must fail. Prints which test caught each one (the file is restored after each)::

    python bench/mutations.py [name ...]
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (what breaks, file, the lines, what they become, the tests that must catch it)
MUTATIONS = [
 ("run_epoch raises", "sigmavae/epoch.py",
  '    noise = noise if noise is not None else noise_generator(x.device)\n    model.train()\n',
  '    raise RuntimeError("mutant")\n',
  ["tests/test_cache.py::test_second_call_trains_nothing",
   "tests/test_training.py::test_training_is_reproducible_and_a_run_reloads"]),
 ("the stage switch never happens", "sigmavae/training.py",
  'if second and state.model.variance != "pixel":', 'if False and second:',
  ["tests/test_training.py::test_stage_switch_freezes_sigma2_and_keeps_variances_above_floor"]),
 ("Eq. 10 returns twice its value", "sigmavae/likelihoods.py",
  "    return (x.float() - mean.float()).square().mean()\n",
  "    return 2 * (x.float() - mean.float()).square().mean()\n",
  ["tests/test_likelihoods.py::test_closed_form_sigma2_maximises_eq9"]),
 ("the floor is dropped (decode)", "sigmavae/models.py",
  "torch.log(torch.sigmoid(logits) + self.floor)", "torch.log(torch.sigmoid(logits))",
  ["tests/test_models.py::test_stage_switch_starts_at_sigma2_dataset_and_respects_floor"]),
 ("the floor is dropped (switch)", "sigmavae/models.py",
  "        self.floor = floor_factor * self.sigma2\n", "        self.floor = 0.0\n",
  ["tests/test_models.py::test_stage_switch_starts_at_sigma2_dataset_and_respects_floor"]),
 ("q̂ fitted with one component whatever is asked", "sigmavae/sampling.py",
  "GaussianMixturePrior(n_components, seed=seed).fit(encode_samples(",
  "GaussianMixturePrior(1, seed=seed).fit(encode_samples(",
  ["tests/test_sampling.py::test_qhat_of_eq_13_fits_as_many_components_as_asked_to_the_posterior_samples"]),
 ("the claim rule ignores the standard error", "sigmavae/claims.py",
  "    if margin > crit * se:\n        return \"holds\"\n    if margin < -crit * se:\n",
  "    if margin > 0:\n        return \"holds\"\n    if margin < 0:\n",
  ["tests/test_claims.py::test_the_rule_at_its_edges"]),
]


def main(only: list[str]) -> int:
    missed = 0
    for name, file, old, new, tests in MUTATIONS:
        if only and not any(o in name for o in only):
            continue
        path = ROOT / file
        source = path.read_text()
        if source.count(old) != 1:
            raise SystemExit(f"{name}: the lines to mutate are not in {file} exactly once; update MUTATIONS")
        path.write_text(source.replace(old, new))
        try:
            command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        finally:
            path.write_text(source)
        failed = [line.split(" ")[1] for line in run.stdout.splitlines() if line.startswith("FAILED")]
        missed += run.returncode == 0
        print(f"{name:<48} {'caught by ' + failed[0] if run.returncode else 'NOT CAUGHT'}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
