"""Score functions of the audits: known answers and hypothesis properties (no models needed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from unlearn.audit.gap import (
    avg_gap,
    clearly_below,
    flatten,
    gap_over_seeds,
    gaps,
    named_gap,
    summarize,
    summarize_runs,
)
from unlearn.audit.lira import lira_scores
from unlearn.audit.loss_mia import loss_attack
from unlearn.audit.mis import balanced_shadow_sets
from unlearn.audit.queries import query_views, shift
from unlearn.audit.rmia import RMIASettings, mean_reference_probability, rmia_scores, trimmed_mean
from unlearn.audit.scores import (
    MIN_FALSE_POSITIVES,
    logit_confidence,
    roc_summary,
    soft_margin_taylor_probability,
    true_class_probability,
)
from unlearn.audit.stats import auc_standard_error, t_interval
from unlearn.errors import UnlearnInputError

scores = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40)
probabilities = st.lists(st.floats(1e-6, 1.0), min_size=4, max_size=40)


@settings(deadline=None)  # timing varies on a shared machine; the property does not
@given(scores, scores, st.randoms(use_true_random=False))
def test_roc_summary_is_sklearns_auc_and_ignores_order(members, nonmembers, rnd):
    truth = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    expected = 100 * roc_auc_score(truth, np.r_[members, nonmembers])
    rnd.shuffle(members)
    rnd.shuffle(nonmembers)
    got = roc_summary(members, nonmembers)
    assert got["auc"] == pytest.approx(expected, abs=1e-9)
    # 40 non-members at most: too few to read a TPR at 1% (or 0.1%) FPR, so neither is reported
    assert got["tpr_at_0.1pct_fpr"] is None and got["tpr_at_1pct_fpr"] is None
    if got["auc_low"] is not None:
        assert got["auc_low"] - 1e-9 <= got["auc"] <= got["auc_high"] + 1e-9


@settings(deadline=None)  # timing varies on a shared machine; the property does not
@given(scores)
def test_identical_distributions_give_auc_50(values):
    assert roc_summary(values, values)["auc"] == pytest.approx(50.0)


def test_separable_scores_give_auc_100_and_full_tpr_at_low_fpr():
    got = roc_summary([5.0, 6.0, 7.0], np.linspace(0, 1, 5000))
    assert got == {"auc": 100.0, "auc_low": 100.0, "auc_high": 100.0, "tpr_at_1pct_fpr": 100.0,
                   "tpr_at_0.1pct_fpr": 100.0}
    assert roc_summary([0.0], [1.0])["auc"] == 0.0


def test_tpr_at_fpr_known_answer():
    # 5000 non-members at 0..4999; members at 4993.5 (6 non-members above it) and 9000 (none above).
    got = roc_summary([4993.5, 9000.0], np.arange(5000.0))
    assert got["tpr_at_0.1pct_fpr"] == 50.0  # only the top member clears the 5 highest non-members
    assert got["tpr_at_1pct_fpr"] == 100.0   # both clear the 50 highest non-members


def test_tpr_at_low_fpr_is_not_reported_without_enough_non_members():
    n_enough = int(MIN_FALSE_POSITIVES / 0.01)  # 500 non-members: 5 may be false positives at 1% FPR
    assert roc_summary([1.0, 2.0], np.zeros(n_enough))["tpr_at_1pct_fpr"] == 100.0
    short = roc_summary([1.0, 2.0], np.zeros(n_enough - 1))
    assert short["tpr_at_1pct_fpr"] is None and short["tpr_at_0.1pct_fpr"] is None
    assert short["auc"] == 100.0  # the AUC needs no such threshold


def test_student_t_interval_covers_the_mean_95_percent_of_the_time_at_three_seeds():
    # 20,000 simulated benchmarks of 3 seeds each; the percentile bootstrap the summaries used
    # before covered 74% here, a z interval (1.96 s/sqrt(n)) covers 80%: both fail this test.
    rng = np.random.default_rng(0)
    samples = rng.normal(10.0, 2.0, size=(20_000, 3))
    low, high = t_interval(samples)
    assert (low[7], high[7]) == t_interval(list(samples[7]))  # row by row, as for one benchmark
    coverage = float(((low <= 10.0) & (10.0 <= high)).mean())
    assert 0.94 < coverage < 0.96, coverage
    assert all(np.isnan(t_interval([3.0])))  # one seed: no interval


def test_delong_interval_of_an_auc_covers_95_percent_of_the_time():
    # 1,000 simulated audits (60 members, 200 non-members, shifted normal scores, true AUC 76%).
    from scipy.stats import mannwhitneyu, norm

    rng = np.random.default_rng(1)
    true_auc = norm.cdf(1.0 / np.sqrt(2))
    members, nonmembers = rng.normal(1.0, 1.0, (1000, 60)), rng.normal(0.0, 1.0, (1000, 200))
    aucs = mannwhitneyu(members, nonmembers, axis=1).statistic / (60 * 200)
    errors = np.array([auc_standard_error(m, n) for m, n in zip(members, nonmembers)])
    coverage = float((np.abs(aucs - true_auc) <= 1.96 * errors).mean())
    assert 0.93 < coverage < 0.97, coverage
    assert errors.mean() == pytest.approx(aucs.std(), rel=0.1)  # DeLong's SE is the AUC's spread
    got = roc_summary(members[0], nonmembers[0])  # the audits report exactly this interval
    assert got["auc"] == pytest.approx(100 * aucs[0])
    assert got["auc_high"] - got["auc"] == pytest.approx(100 * 1.959964 * errors[0], rel=1e-5)
    assert np.isnan(auc_standard_error([1.0], [0.0, 1.0]))


def test_mis_fits_its_svc_on_equal_numbers_of_members_and_non_members():
    for n_retain, n_test in ((300, 900), (900, 300), (50_000, 20_000)):
        members, nonmembers = balanced_shadow_sets(n_retain, n_test, seed=3)
        assert len(members) == len(nonmembers) == min(n_retain, n_test, 10_000)
        assert len(set(members)) == len(members) and members.max() < n_retain and nonmembers.max() < n_test


@settings(max_examples=50, deadline=None)
@given(probabilities, st.floats(1.0, 4.0), st.randoms(use_true_random=False))
def test_rmia_score_is_monotone_in_the_target_probability(p, gamma, rnd):
    p = np.array(p)
    mean_p = np.full_like(p, 0.5)
    population = np.arange(len(p)) % 2 == 0
    base = rmia_scores(p, mean_p, population, gamma)
    assert ((0 <= base) & (base <= 1)).all()
    k = rnd.randrange(len(p))
    raised = p.copy()
    raised[k] = min(1.0, p[k] * 1.5)
    after = rmia_scores(raised, mean_p, population, gamma)
    assert after[k] >= base[k]  # a more confident true label never lowers x's own score


@settings(deadline=None)  # timing varies on a shared machine; the property does not
@given(probabilities, st.randoms(use_true_random=False))
def test_rmia_score_does_not_depend_on_point_order(p, rnd):
    p = np.array(p)
    mean_p = np.linspace(0.2, 0.9, len(p))
    population = np.arange(len(p)) % 3 != 0
    order = np.array(rnd.sample(range(len(p)), len(p)))
    got = rmia_scores(p[order], mean_p[order], population[order])
    np.testing.assert_allclose(got, rmia_scores(p, mean_p, population)[order])


def test_rmia_score_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    p, mean_p = rng.uniform(0.01, 1, 50), rng.uniform(0.01, 1, 50)
    z = np.arange(50) >= 20
    ratio = p / mean_p
    pairwise = (ratio[:, None] / ratio[None, z] > 2.0).mean(1)
    np.testing.assert_allclose(rmia_scores(p, mean_p, z, 2.0), pairwise)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.0, 3.0), st.integers(1, 3))
def test_rmia_score_matches_the_authors_pairwise_test_with_negative_signals(seed, gamma, views):
    """The authors' 4-term Taylor signal can be negative and is not clipped: RMIA must still count the
    pairs with ratio_x · (1 / ratio_z) > γ, as the authors' code does, signs and zeros included."""
    rng = np.random.default_rng(seed)
    p, mean_p = rng.normal(0.2, 0.5, (views, 40)), rng.normal(0.3, 0.4, (views, 40))
    p[:, :3] = 0.0  # a zero ratio, on either side of a pair
    z = np.arange(40) >= 15
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p / mean_p
        exceeds = ratio[:, :, None] * (1 / ratio[:, None, z]) > gamma  # (views, x, z)
    expected = (2 * exceeds.sum(0) > views).mean(1)
    np.testing.assert_allclose(rmia_scores(p if views > 1 else p[0], mean_p if views > 1 else mean_p[0], z, gamma),
                               expected)


def test_offline_mean_uses_out_models_with_the_linear_correction():
    ref = np.array([[0.2, 0.9], [0.6, 0.1], [0.4, 0.5]])
    members = np.array([[True, False], [False, False], [False, True]])
    # point 0: OUT in models 1, 2 -> mean 0.5; point 1: OUT in models 0, 1 -> mean 0.5
    np.testing.assert_allclose(mean_reference_probability(ref, members, offline=True, offline_a=0.3),
                               [(1.3 * 0.5 + 0.7) / 2] * 2)
    np.testing.assert_allclose(mean_reference_probability(ref, members), ref.mean(0))


def test_lira_score_rises_with_phi_for_every_example():
    rng = np.random.default_rng(1)
    members = np.zeros((8, 30), bool)
    members[::2] = True
    noise = rng.normal(0, 1, (4, 30))
    # IN and OUT models share the noise, so the two Gaussians have one variance: the ratio is linear in φ.
    ref = np.where(members, 3.0, 0.0) + np.repeat(noise, 2, axis=0)
    phi = rng.normal(1.5, 2, 30)
    for offline in (False, True):
        assert (lira_scores(phi + 0.5, ref, members, offline) > lira_scores(phi, ref, members, offline)).all()
    # A φ at the IN mean scores above one at the OUT mean, per example.
    in_mean, out_mean = ref[members[:, 0]].mean(0), ref[~members[:, 0]].mean(0)
    assert (lira_scores(in_mean, ref, members) > lira_scores(out_mean, ref, members)).all()


def test_signals_known_answers():
    import torch

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 50.0, -50.0]])
    labels = torch.tensor([0, 1])
    p = true_class_probability(logits, labels)
    assert p[0].item() == pytest.approx(np.exp(2) / (np.exp(2) + 2))
    assert logit_confidence(logits, labels)[0].item() == pytest.approx(np.log(p[0].item() / (1 - p[0].item())))
    assert logit_confidence(logits, labels)[1].item() == pytest.approx(50.0, abs=1e-6)  # p rounds to 1, φ does not
    # The RMIA authors' signal at T = 2, m = 0.6, 4 terms: z = (1, 0, 0), t(u) = 1 + u + u²/2 + u³/6.
    sm = soft_margin_taylor_probability(logits, labels, temperature=2.0, margin=0.6, terms=4)
    t = 1 + 0.4 + 0.4**2 / 2 + 0.4**3 / 6
    assert sm[0].item() == pytest.approx(t / (t + 2))
    assert RMIASettings.authors().signal_of(logits, labels)[0].item() == pytest.approx(t / (t + 2))
    assert RMIASettings().signal_of(logits, labels)[0].item() == pytest.approx(p[0].item())
    # Logits (0, 50, −50) at T = 2: t(25 − 0.6) > 0, t(−25) < 0 and the cubic's sum leaves [0, 1]; the
    # authors keep it (no clip), so do we.
    def cubic(u):
        return 1 + u + u**2 / 2 + u**3 / 6

    assert sm[1].item() == pytest.approx(cubic(24.4) / (cubic(24.4) + cubic(0.0) + cubic(-25.0)))
    assert sm[1].item() > 1
    negative = soft_margin_taylor_probability(logits[1:], torch.tensor([2]), temperature=2.0, margin=0.6, terms=4)
    assert negative.item() == pytest.approx(cubic(-25.6) / (cubic(-25.6) + cubic(0.0) + cubic(25.0)))
    assert negative.item() < 0
    with pytest.raises(UnlearnInputError, match="taylor_terms"):
        RMIASettings(taylor_terms=1)
    with pytest.raises(UnlearnInputError, match="unknown key"):
        RMIASettings.of({"temprature": 2})


def test_trimmed_mean_cuts_each_end_over_the_masked_models_only():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 7.0], [100.0, 9.0]])
    np.testing.assert_allclose(trimmed_mean(values, trim=0.25), [2.5, 6.0])
    np.testing.assert_allclose(trimmed_mean(values), values.mean(0))
    mask = np.array([[True, True], [True, False], [True, True], [False, True]])
    np.testing.assert_allclose(trimmed_mean(values, mask, trim=0.25), [2.0, 7.0])  # 3 models: cut none
    with pytest.raises(UnlearnInputError, match="OUT"):
        trimmed_mean(values, np.zeros_like(mask))


@settings(max_examples=30, deadline=None)
@given(probabilities, st.integers(2, 5), st.floats(1.0, 3.0))
def test_rmia_with_identical_views_equals_one_query(p, views, gamma):
    p = np.array(p)
    mean_p = np.linspace(0.2, 0.9, len(p))
    population = np.arange(len(p)) % 3 == 0
    single = rmia_scores(p, mean_p, population, gamma)
    np.testing.assert_allclose(rmia_scores(np.tile(p, (views, 1)), np.tile(mean_p, (views, 1)), population, gamma),
                               single)


def test_rmia_views_vote_by_majority():
    # Two points x (non-population) and one population point z; three views.
    target = np.array([[4.0, 1.0], [4.0, 1.0], [1.0, 1.0]])  # x beats z by 4x in two views, ties in one
    mean_p = np.ones_like(target)
    population = np.array([False, True])
    assert rmia_scores(target, mean_p, population, gamma=2.0)[0] == 1.0  # 2 of 3 views say LR > γ
    target[1, 0] = 1.0
    assert rmia_scores(target, mean_p, population, gamma=2.0)[0] == 0.0  # 1 of 3: no


def test_query_views_shift_signals_and_images_as_the_augmentation_does():
    import torch

    signal = torch.arange(1.0, 6.0).view(1, 5)
    assert shift(signal, 1).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0]]
    assert shift(signal, -2).tolist() == [[3.0, 4.0, 5.0, 0.0, 0.0]]
    views = query_views(signal, 5)
    assert len(views) == 5 and torch.equal(views[0], signal)
    image = torch.arange(9.0).view(1, 1, 3, 3)
    assert len(query_views(image, 18)) == 1  # no flip, no crop in the recipe: the point only
    flips = query_views(image, 2, flip=True)
    assert torch.equal(flips[1], image.flip(-1))
    assert len(query_views(image, 100, flip=True, crop_padding=1)) == 2 * 9
    # 0 = the model's own augmentation: the flip for a recipe that flips, nothing for one that does not.
    assert len(query_views(image, 0, flip=True)) == 2 and len(query_views(signal, 0)) == 1


def test_loss_attack_separates_disjoint_losses_and_not_equal_ones():
    rng = np.random.default_rng(0)
    assert loss_attack(rng.uniform(0, 1, 100), rng.uniform(2, 3, 300))["accuracy"] == 100.0
    same = rng.exponential(1.0, 400)
    got = loss_attack(same[:200], same[200:])
    assert 35 < got["accuracy"] < 65 and 40 < got["auc"] < 60
    with pytest.raises(UnlearnInputError, match="at least 10"):
        loss_attack(np.ones(5), np.ones(50))


def test_the_two_named_gaps_each_have_their_own_four_terms():
    model = {"acc": {"forget": 90.0, "retain": 99.0, "test": 95.0}, "mis": {"mis": 10.0}, "rmia": {"auc": 60.0}}
    retrained = {"acc": {"forget": 95.0, "retain": 100.0, "test": 95.0}, "mis": {"mis": 20.0},
                 "rmia": {"auc": 50.0}}
    assert named_gap("gap-rmia", model, retrained) == pytest.approx((5 + 1 + 0 + 10) / 4)
    assert named_gap("gap-mis", model, retrained) == pytest.approx((5 + 1 + 0 + 10) / 4)
    model["mis"]["mis"] = 22.0
    both = gaps(model, retrained)
    assert both["gap-mis"] == pytest.approx((5 + 1 + 0 + 2) / 4) and both["gap-rmia"] == pytest.approx(4.0)


def test_a_gap_with_a_missing_term_is_refused_or_explicitly_not_available():
    model = {"acc": {"forget": 90.0, "retain": 99.0, "test": 95.0}, "mis": {"mis": 10.0}}
    retrained = {"acc": {"forget": 95.0, "retain": 100.0, "test": 95.0}, "mis": {"mis": 20.0}}
    with pytest.raises(UnlearnInputError, match="gap-rmia needs .*rmia.auc missing"):
        named_gap("gap-rmia", model, retrained)
    out = gaps(model, retrained)  # RMIA not run on either: n/a, not a 3-term "gap-rmia"
    assert out["gap-rmia"] is None and out["gap-mis"] == pytest.approx(4.0)
    with pytest.raises(UnlearnInputError, match="rmia.auc in only one"):
        gaps({**model, "rmia": {"auc": 55.0}}, retrained)


def test_clearly_below_needs_the_difference_beyond_noise():
    assert clearly_below([1.0, 1.2, 0.9], [5.0, 5.5, 4.8]) is True
    assert clearly_below([4.0, 6.0, 4.5], [5.0, 5.5, 4.8]) is False  # below on average, within noise
    assert clearly_below([1.0], [5.0]) is None  # one seed and no sampling errors: undecided
    assert clearly_below([1.0], [5.0], standard_errors=[1.0, 1.0]) is True
    assert clearly_below([3.0], [5.0], standard_errors=[1.0, 1.0]) is False  # 2 < 1.96 * sqrt(2)
    with pytest.raises(UnlearnInputError, match="pairs"):
        clearly_below([1.0, 2.0], [1.0])


def test_avg_gap_known_answer_and_identical_metrics():
    a = {"acc": {"forget": 90.0, "retain": 99.0, "test": 95.0}, "mis": {"mis": 10.0}}
    b = {"acc.forget": 95.0, "acc.retain": 100.0, "acc.test": 95.0, "mis.mis": 20.0}
    gap = avg_gap(a, b)
    assert gap == {"acc.forget": 5.0, "acc.retain": 1.0, "acc.test": 0.0, "mis.mis": 10.0, "avg_gap": 4.0}
    assert avg_gap(a, a)["avg_gap"] == 0.0
    assert avg_gap(b, a) == gap  # two-sided
    with pytest.raises(UnlearnInputError, match="rmia.auc"):
        avg_gap(a, b, keys=("acc.forget", "rmia.auc"))
    assert flatten({"x": {"y": {"z": 1}}, "w": 2}) == {"x.y.z": 1, "w": 2}


@settings(deadline=None)  # timing varies on a shared machine; the property does not
@given(st.lists(st.floats(0, 100), min_size=2, max_size=10))
def test_t_interval_brackets_the_mean(values):
    s = summarize(values)
    assert s["ci_low"] - 1e-9 <= s["mean"] <= s["ci_high"] + 1e-9
    assert s["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-9)
    half = s["ci_high"] - s["mean"]  # t_{n-1, 0.975} s / sqrt(n) > 1.96 s / sqrt(n): wider than a z interval
    assert half >= 1.96 * s["std"] / np.sqrt(len(values)) - 1e-9


def test_gap_over_seeds_summaries():
    runs = [{"acc.forget": f, "acc.retain": 100.0, "acc.test": 95.0, "mis.mis": 10.0} for f in (90.0, 92.0, 94.0)]
    refs = [{"acc.forget": 95.0, "acc.retain": 100.0, "acc.test": 95.0, "mis.mis": 10.0}] * 3
    out = gap_over_seeds(runs, refs)
    assert out["acc.forget"]["mean"] == pytest.approx(3.0) and out["acc.forget"]["std"] == pytest.approx(2.0)
    assert out["avg_gap"]["mean"] == pytest.approx(0.75)
    assert gap_over_seeds(refs, refs)["avg_gap"] == {"mean": 0.0, "std": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 3}
    assert summarize_runs(runs)["acc.forget"]["n"] == 3
    with pytest.raises(UnlearnInputError, match="pair them"):
        gap_over_seeds(runs, refs[:2])


def test_summaries_keep_only_numeric_figures_every_run_has_and_pass_options_on():
    # Found by the mutation check (docs/testing.md): keys taken from a later run, a run skipped,
    # flags or names summarised as numbers, and options (confidence) dropped, all passed before.
    runs = [{"acc": {"forget": 90.0}, "seed": 1, "only_first": 1.0, "name": "a", "ok": True},
            {"acc": {"forget": 94.0}, "seed": 2, "only_first": 2.0, "only_later": 5.0, "name": "b", "ok": False},
            {"acc": {"forget": 98.0}, "seed": 3, "only_later": 6.0, "name": "c", "ok": True}]
    out = summarize_runs(runs, confidence=0.5)
    assert set(out) == {"acc.forget", "seed"}
    assert out["acc.forget"] == summarize([90.0, 94.0, 98.0], confidence=0.5)
    assert out["acc.forget"] != summarize([90.0, 94.0, 98.0])  # the option reached summarize
    with pytest.raises(UnlearnInputError, match="no runs"):
        summarize_runs([])


def test_gap_over_seeds_uses_the_given_keys_and_options():
    runs = [{"acc.forget": f, "acc.test": t} for f, t in ((90.0, 95.0), (92.0, 93.0), (97.0, 90.0))]
    refs = [{"acc.forget": 95.0, "acc.test": 94.0}] * 3
    out = gap_over_seeds(runs, refs, keys=("acc.forget", "acc.test"), confidence=0.5)
    assert set(out) == {"acc.forget", "acc.test", "avg_gap"}
    assert out["acc.forget"] == summarize([5.0, 3.0, 2.0], confidence=0.5)
    assert out["acc.test"]["mean"] == pytest.approx(2.0)  # |95 − 94|, |93 − 94|, |90 − 94|: both sides


@pytest.mark.parametrize("call, message", [
    (lambda: summarize([]), "no values"),
    (lambda: summarize([1.0, 2.0], confidence=0.0), "confidence"),
    (lambda: summarize([1.0, 2.0], confidence=1.0), "confidence"),
    (lambda: avg_gap({"a": 1.0}, {"a": 2.0}, keys=()), "at least one metric key"),
    (lambda: avg_gap({"a": 1.0, "b": 1.0}, {"a": 2.0}, keys=("a", "b")), r"\['b'\] missing"),
    (lambda: avg_gap({"a": 1.0}, {"a": 2.0, "b": 1.0}, keys=("a", "b")), r"\['b'\] missing"),
])
def test_summaries_and_gaps_refuse_what_they_cannot_compute(call, message):
    with pytest.raises(UnlearnInputError, match=message):
        call()
