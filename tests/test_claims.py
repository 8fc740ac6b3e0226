"""The claim rule on hand-made numbers: a difference counts beyond twice its standard error."""

import math

import pytest

from sigmavae.claims import Estimate, all_of, between, check, exact, greater, positive, verdict, within


def test_estimate_across_seeds_and_from_one_estimator():
    three = Estimate([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])
    assert three.mean == 2.0 and three.std == pytest.approx(1.0)
    assert three.se == pytest.approx(1.0 / math.sqrt(3))  # seeds: std / √n (includes estimator noise)
    assert three.stderr == pytest.approx(math.sqrt(3 * 0.01) / 3)
    one = Estimate([5.0], [0.5])
    assert one.std is None and one.se == 0.5  # one seed: the estimator's error
    assert Estimate([5.0]).se is None
    assert three.to_json() == {"mean": 2.0, "std": pytest.approx(1.0), "values": [1.0, 2.0, 3.0],
                               "stderr": pytest.approx(0.0577, abs=1e-4), "stderr_per_seed": [0.1] * 3}
    assert "std" in Estimate([1.0]).to_json() and Estimate([1.0]).to_json()["std"] is None


def test_differences_of_independent_estimates_add_their_variances():
    d = Estimate([3.0], [0.3]) - Estimate([1.0], [0.4])
    assert d.values == (2.0,) and d.se == pytest.approx(0.5)


@pytest.mark.parametrize("margin, se, want", [
    (1.01, 0.5, "holds"), (0.99, 0.5, "unresolved"), (-0.99, 0.5, "unresolved"), (-1.01, 0.5, "fails"),
    (0.1, 0.0, "holds"), (5.0, None, "unresolved"), (float("nan"), 1.0, "unresolved"),
])
def test_the_rule_at_its_edges(margin, se, want):
    assert verdict(margin, se) == want


def test_a_table_where_ours_wins_clearly_loses_clearly_or_cannot_tell():
    ours, other = Estimate([100.0, 102.0, 98.0]), Estimate([90.0, 91.0, 89.0])
    win = greater("ours beats the other", ours, other, "nats")
    assert win.verdict == "holds" and win.margin == pytest.approx(10.0) and win.basis == "3 seeds, t(2)"
    assert greater("the other beats ours", other, ours).verdict == "fails"
    noisy = Estimate([100.0, 80.0, 120.0])
    tie = greater("ours beats a noisy other", ours, noisy)
    assert tie.verdict == "unresolved" and "3 seeds" in tie.margin_text()


def test_one_seed_says_so_and_uses_the_estimator():
    c = greater("x", Estimate([10.0], [1.0]), Estimate([7.0], [1.0]))
    assert c.verdict == "holds" and c.basis == "1 seed, estimator error only"  # 3 > 2·√2
    c = greater("x", Estimate([10.0], [1.0]), Estimate([8.0], [1.0]))
    assert c.verdict == "unresolved"  # 2 < 2·√2
    assert positive("σ² is positive", Estimate([0.03])).verdict == "unresolved"  # no error estimate


def test_all_of_fails_on_one_and_reports_the_weakest():
    parts = [positive("a", Estimate([5.0], [1.0])), positive("b", Estimate([3.0], [1.0]))]
    assert all_of("all", parts).verdict == "holds" and all_of("all", parts).margin == 3.0
    parts.append(positive("c", Estimate([-3.0], [1.0])))
    assert all_of("all", parts).verdict == "fails" and all_of("all", parts).margin == -3.0
    assert all_of("all", parts[:2] + [positive("d", Estimate([1.0], [1.0]))]).verdict == "unresolved"


def test_within_and_between_measure_the_distance_to_the_bound():
    c = within("|d| < 1", Estimate([-0.2], [0.1]), 1.0)
    assert c.margin == pytest.approx(0.8) and c.verdict == "holds"
    assert within("|d| < 1", Estimate([1.5], [0.1]), 1.0).verdict == "fails"
    b = between("0.01 < σ² < 0.1", Estimate([0.035, 0.04, 0.03]), 0.01, 0.1)
    assert b.margin == pytest.approx(0.025) and b.verdict == "holds"
    assert between("0.01 < σ² < 0.1", Estimate([0.2, 0.21, 0.19]), 0.01, 0.1).verdict == "fails"
    assert exact(2.0, 3).se == 0.0


def test_within_and_between_on_the_other_side():
    c = within("|d| < 1", Estimate([-1.5], [0.1]), 1.0)  # |−1.5| is 0.5 beyond the bound
    assert c.margin == pytest.approx(-0.5) and c.se == pytest.approx(0.1) and c.verdict == "fails"
    c = between("0.01 < σ² < 0.1", Estimate([0.09], [0.001]), 0.01, 0.1)  # the upper bound is nearer
    assert c.margin == pytest.approx(0.01) and c.se == pytest.approx(0.001) and c.verdict == "holds"


def test_all_of_takes_the_weakest_part_by_z_not_by_margin():
    wide, tight = positive("wide", Estimate([10.0], [4.0])), positive("tight", Estimate([3.0], [1.0]))
    c = all_of("both", [tight, wide])  # z = 2.5 and 3: the wide one is the weaker
    assert (c.verdict, c.margin, c.se) == ("holds", 10.0, 4.0)
    assert c.basis.endswith("; weakest: wide")  # the margin says which comparison it is
    c = all_of("both", [tight, positive("bare", Estimate([100.0]))])  # no error estimate: weakest of all
    assert (c.verdict, c.margin, c.se, c.basis) == ("unresolved", 100.0, None,
                                                    "1 seed, no error estimate; weakest: bare")
    assert all_of("one", [tight]).basis == tight.basis  # a single part needs no name


def test_differences_over_seeds_pair_them_seed_by_seed():
    a, b = Estimate([10.0, 20.0, 30.0]), Estimate([9.0, 19.0, 29.0])  # a spread of 10 that both share
    assert a.se == pytest.approx(10 / math.sqrt(3))
    c = greater("a > b", a, b)  # differences 1, 1, 1: no spread left
    assert (c.verdict, c.margin, c.se, c.z) == ("holds", 1.0, 0.0, math.inf)
    assert (Estimate([3.0], [0.5]) - Estimate([1.0])).se == 0.5  # an exact number adds no error
    assert (Estimate([3.0]) - Estimate([1.0])).se is None
    with pytest.raises(ValueError, match="cannot subtract estimates over 2 and 3 seeds"):
        a - Estimate([1.0, 2.0])


def test_few_seeds_need_students_t_not_two_standard_errors():
    """With 3 seeds, 2·se covers only ~82% (t with 2 degrees of freedom): the rule asks for
    t(2) = 4.53 standard errors, the same two-sided 95.45% as 2 se of a normal."""
    from scipy.stats import t

    from sigmavae.claims import LEVEL, critical

    assert critical(1) == 2.0 and LEVEL == pytest.approx(0.9545, abs=1e-4)
    assert critical(3) == pytest.approx(4.527, abs=1e-3) and critical(10) == pytest.approx(2.320, abs=1e-3)
    assert 2 * t.cdf(2.0, 2) - 1 == pytest.approx(0.816, abs=1e-3)  # what 2 se would have meant
    d = Estimate([3.0, 4.0, 5.0])  # mean 4, se 1/√3 = 0.577: 6.9 se, beyond 4.53
    assert positive("clear", d).verdict == "holds" and positive("clear", d).crit == critical(3)
    d = Estimate([1.0, 2.0, 3.2])  # mean 2.07, se 0.64: z = 3.2, above 2 but below t(2)
    c = positive("three seeds, z = 3.2", d)
    assert c.z > 2 and c.verdict == "unresolved" and c.basis == "3 seeds, t(2)"
    one = positive("one seed, z = 3.2", Estimate([3.2], [1.0]))  # the estimator's error: normal
    assert one.verdict == "holds" and one.crit == 2.0
    # several claims: the weakest by z over its own critical value
    weakest = all_of("both", [c, one])
    assert weakest.verdict == "unresolved" and weakest.basis == "3 seeds, t(2); weakest: three seeds, z = 3.2"


# ----------------------------------------------------------------------------- comparators (issue 32)


def test_a_claim_against_a_constant_must_name_the_papers_threshold():
    """Chance (AUROC 0.5) and bounds are passed by a model that ignores z: they are checks. A claim
    against a constant is refused unless it names the threshold of the paper's it tests."""
    auroc = Estimate([0.82], [0.01])
    with pytest.raises(ValueError, match="constant 0.5.*threshold.*check"):
        positive("σ² ranks the worst pixels first", auroc.shift(-0.5))
    with pytest.raises(ValueError, match="constant"):
        positive("the gap", -(auroc.shift(-0.5)))  # negated, still against 0.5
    named = positive("most pixels", auroc.shift(-0.5), threshold="ours: over half")
    assert named.verdict == "holds" and named.to_json()["threshold"] == "ours: over half"
    as_check = check("σ² ranks the worst pixels first", auroc.shift(-0.5), "chance")
    assert as_check["passed"] and as_check["text"].endswith("against chance")


def test_a_difference_of_two_measured_numbers_needs_no_threshold():
    a, b = Estimate([3.0], [0.5]), Estimate([1.0], [0.5])
    assert positive("a > b", a - b).threshold is None
    assert (a.shift(-1) - b.shift(-1)).offset == 0  # the constants cancel

