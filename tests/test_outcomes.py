"""What every measurement shares: one seed at a time, nested results gathered into Estimates."""

import json

from sigmavae import reports
from sigmavae.claims import Estimate
from sigmavae.outcomes import jsonable, per_seed
from sigmavae.params import Params


def test_per_seed_keeps_the_nesting_with_each_seeds_value_and_stderr_at_the_leaves():
    asked = []

    def one(seed):
        asked.append(seed)
        return {"kl": {"1": (1.0 + seed, 0.1 * (seed + 1)), "0.5": (2.0 * (seed + 1), None)},
                "sigma2": {"learned": (0.03 * (seed + 1), None)},
                "fid": {4: {("qhat", "ours"): (10.0 - seed, 1.0)}},
                "real": (5.0 + seed, 0.5 if seed == 3 else None),  # one seed without an error: no errors
                "gain": (seed, 2.0 + seed)}

    est = per_seed(Params(seeds=(3, 7)), one)
    assert asked == [3, 7]
    assert list(est) == ["kl", "sigma2", "fid", "real", "gain"] and list(est["kl"]) == ["1", "0.5"]
    assert est["kl"]["1"] == Estimate([4.0, 8.0], [0.4, 0.8])
    assert est["kl"]["0.5"] == Estimate([8.0, 16.0]) and est["kl"]["0.5"].stderrs is None
    assert est["sigma2"]["learned"] == Estimate([0.12, 0.24])
    assert est["fid"][4][("qhat", "ours")] == Estimate([7.0, 3.0], [1.0, 1.0])
    assert est["real"] == Estimate([8.0, 12.0]) and est["real"].stderrs is None
    assert est["gain"] == Estimate([3.0, 7.0], [5.0, 9.0])
    saved = json.loads(json.dumps(jsonable(est)))
    assert saved["kl"]["1"]["values"] == [4.0, 8.0] and saved["kl"]["1"]["stderr_per_seed"] == [0.4, 0.8]
    assert saved["fid"]["4"]["('qhat', 'ours')"]["mean"] == 5.0


def test_per_seed_of_a_bare_leaf_is_one_estimate():
    assert per_seed(Params(seeds=(0,)), lambda seed: (2.5, 0.5)) == Estimate([2.5], [0.5])


def test_a_table_cell_over_seeds_shows_each_seeds_value():
    """With several seeds a cell reads mean ± std and then each seed's value, so one seed unlike the
    others (seed 1's collapse at the paper's settings) is seen, not averaged away."""
    assert reports._cell(Estimate([8.7, 1623.8, 9.5]), 1) == "547.3 ± 932.2 (8.7, 1623.8, 9.5)"
    assert reports._cell(Estimate([8.7], [0.7]), 1) == "8.7 ± 0.7"
    assert reports._cell(None) == ""
