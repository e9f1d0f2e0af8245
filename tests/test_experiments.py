"""Benchmark protocols, the bench driver, resume, summaries and the report, on digits.

The bench tests use a tiny protocol (8-epoch MLPs, one-epoch methods, accuracy + loss MIA) so
they run in seconds; the models they train are real and so are the audits' figures.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn.errors import UnlearnInputError
from unlearn.experiments import parse_config
from unlearn.experiments.summary import aggregate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_RECIPE = {"lr": 0.05, "epochs": 8, "batch_size": 64, "schedule": "onecycle", "weight_decay": 0.0}


def tiny_protocol(methods: dict | None = None, seeds=(0,), attacks=("acc", "loss", "rmia")) -> dict:
    return {
        "name": "tiny", "dataset": "digits", "model": {"arch": "mlp", "args": {"hidden": [64]}},
        "recipe": dict(TINY_RECIPE), "seeds": list(seeds),
        "forget": [{"name": "r10", "kind": "random", "fraction": 0.1, "seeds": [0]}],
        "settings": ["with_retain", "without_retain"],
        "methods": methods if methods is not None else {"ft": {"lr": 0.01, "epochs": 1}, "ga": {"epochs": 1}},
        "audit": {"attacks": list(attacks), "n_reference": 2},
        "tune": {"trials": 0},  # untuned unless a test tunes: keeps the bench tests to seconds
    }


def as_yaml(raw: dict) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


@pytest.fixture(scope="module")
def audit_layer():
    from unlearn import audit

    if not hasattr(audit, "evaluate"):
        pytest.skip("unlearn.audit.evaluate has not landed yet; the bench audits through it")
    return audit


# ---- configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = parse_config(path.read_text(), str(path))
    assert config.methods and config.forget


def _line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


@pytest.mark.parametrize("edit, key, needle", [
    (lambda r: r["methods"].update({"no-such-method": {}}), "methods.no-such-method", "no-such-method"),
    (lambda r: r["audit"].update({"n_refs": 3}), "audit.n_refs", "n_refs"),
    (lambda r: r.update({"seeds": ["zero"]}), "seeds.0", "zero"),
    (lambda r: r["forget"][0].update({"fraction": 1.5}), "forget.0.fraction", "fraction"),
    (lambda r: r["forget"][0].update({"fraction": 0.0}), "forget.0.fraction", "fraction"),
    (lambda r: r["methods"]["ft"].update({"lrate": 0.1}), "methods.ft", "ft:"),
    (lambda r: r.update({"settings": ["with_retain", "sometimes"]}), "settings.1", "sometimes"),
    (lambda r: r["audit"].update({"attacks": ["acc", "telepathy"]}), "audit.attacks", "attacks"),
    (lambda r: r["audit"].update({"n_reference": 0}), "audit.n_reference", "n_reference"),
    (lambda r: r["audit"].update({"rmia": {"signal": "loss"}}), "audit.rmia", "rmia:"),
    (lambda r: r["methods"].update({"retrain": {"recipe": "digits"}}), "methods.retrain", "retrain:"),
])
def test_malformed_config_is_refused_naming_key_and_line(edit, key, needle):
    raw = tiny_protocol()
    edit(raw)
    text = as_yaml(raw)
    with pytest.raises(UnlearnInputError) as err:
        parse_config(text, "p.yaml")
    message = str(err.value)
    assert key in message
    assert re.match(rf"p\.yaml:{_line_of(text, needle)}:", message), message


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=5))
def test_forget_fraction_accepted_exactly_inside_unit_interval(fraction):
    raw = tiny_protocol()
    raw["forget"][0]["fraction"] = fraction
    if 0 < fraction < 1:
        assert parse_config(as_yaml(raw)).forget[0].fraction == fraction
    else:
        with pytest.raises(UnlearnInputError, match="forget.0.fraction"):
            parse_config(as_yaml(raw))


def test_demo_protocol_names_every_registered_method():
    from unlearn import methods
    from unlearn.cli.demo import demo_protocol

    config = parse_config(as_yaml(demo_protocol()))
    assert list(config.methods) == methods.available()
    assert set(config.settings) == {"with_retain", "without_retain"}
    assert {"acc", "mis", "loss", "rmia"} <= set(config.audit.attacks)


# ---- jobs and summaries ----------------------------------------------------------------------

def test_resolve_expands_every_combination_and_marks_retain_only_methods(digits):
    from unlearn import methods
    from unlearn.experiments.jobs import resolve

    raw = tiny_protocol(seeds=(0, 1))
    raw["forget"][0]["seeds"] = [0, 1, 2]
    plan = resolve(parse_config(as_yaml(raw)), digits)
    assert len(plan.oracle) == 3 * 2
    # the two reference rows: one job each per forget set and model seed, the same in both settings
    references = [j for j in plan.runs if j.method in ("original", "retrain-floor")]
    assert len(references) == 3 * 2 * 2 and {j.setting for j in references} == {"with_retain"}
    floors = [j for j in references if j.method == "retrain-floor"]
    assert all(j.hparams["seed"] == j.model_seed + 1000 for j in floors)  # a retrain from another seed
    # ft needs D_R: its runs without D_R are explicit n/a, never silently dropped.
    assert methods.get_class("ft").requires_retain
    assert len(plan.runs) - len(references) + len(plan.not_applicable) == 3 * 2 * 2 * 2
    assert {(j.method, j.setting) for j in plan.not_applicable} == {("ft", "without_retain")}
    assert len({j.id for j in plan.oracle + plan.runs + plan.not_applicable}) == 3 * 2 * (1 + 2 + 4)
    # the evaluation half of the test split never reaches a method
    assert not set(plan.validation) & set(plan.evaluation)


def test_train_subset_is_stratified_and_has_its_own_fingerprint(digits):
    import numpy as np

    from unlearn.experiments.jobs import dataset_of

    sub = dataset_of("digits", None, 500, 3)
    assert len(sub.train) == 500 and len(sub.test) == len(digits.test)
    full_share = np.bincount(digits.train.y.numpy()) / len(digits.train)
    assert np.abs(np.bincount(sub.train.y.numpy()) / 500 - full_share).max() < 0.01
    assert sub.fingerprint != digits.fingerprint != dataset_of("digits", None, 500, 4).fingerprint
    assert dataset_of("digits", None, 500, 3).fingerprint == sub.fingerprint
    with pytest.raises(UnlearnInputError, match="train_subset"):
        dataset_of("digits", None, len(digits.train), 0)


def test_test_subset_is_stratified_keeps_the_training_split_and_has_its_own_fingerprint(digits):
    import numpy as np

    from unlearn.experiments.jobs import dataset_of

    sub = dataset_of("digits", None, None, 0, 200)
    assert len(sub.test) == 200 and torch.equal(sub.train.x, digits.train.x)
    full_share = np.bincount(digits.test.y.numpy()) / len(digits.test)
    assert np.abs(np.bincount(sub.test.y.numpy()) / 200 - full_share).max() < 0.01
    both = dataset_of("digits", None, 500, 0, 200)
    assert both.fingerprint.startswith(dataset_of("digits", None, 500, 0).fingerprint)  # train part unchanged
    assert len({digits.fingerprint, sub.fingerprint, both.fingerprint}) == 3
    with pytest.raises(UnlearnInputError, match="test_subset"):
        dataset_of("digits", None, None, 0, len(digits.test))


def test_changed_hyperparameter_changes_job_id(digits):
    from unlearn.experiments.jobs import resolve

    a = resolve(parse_config(as_yaml(tiny_protocol())), digits)
    b = resolve(parse_config(as_yaml(tiny_protocol({"ft": {"lr": 0.02, "epochs": 1}, "ga": {"epochs": 1}}))), digits)
    ids_a = {j.method: j.id for j in a.runs if j.setting == "with_retain"}
    ids_b = {j.method: j.id for j in b.runs if j.setting == "with_retain"}
    assert ids_a["ft"] != ids_b["ft"] and ids_a["ga"] == ids_b["ga"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=6))
def test_summary_is_mean_and_sample_std_over_runs(values):
    import numpy as np

    records = [{"method": "ft", "setting": "with_retain", "forget": "r10", "status": "ok", "seconds": 1.0,
                "retrain_seconds": 4.0, "flat": {"acc.forget": v}} for v in values]
    (row,) = aggregate(records)
    cell = row["acc.forget"]
    assert math.isclose(cell["mean"], float(np.mean(values)), rel_tol=1e-9, abs_tol=1e-9)
    expected_std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    assert math.isclose(cell["std"], expected_std, rel_tol=1e-9, abs_tol=1e-9)
    assert cell["n"] == row["n"] == len(values)
    if len(values) > 1:  # Student's t: mean ± t_{n-1} s / sqrt(n)
        from scipy.stats import t

        half = t.ppf(0.975, len(values) - 1) * expected_std / math.sqrt(len(values))
        assert cell["high"] - cell["mean"] == pytest.approx(half, abs=1e-9)
    assert row["time_fraction"]["mean"] == pytest.approx(0.25)


# ---- the bench -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(audit_layer, tmp_path_factory, bank):
    from unlearn.experiments import run_bench

    run_dir = tmp_path_factory.mktemp("bench") / "tiny"
    config = parse_config(as_yaml(tiny_protocol()))
    first = run_bench(config, run_dir, bank=bank, progress=False)
    return config, run_dir, first


def test_bench_writes_run_directory(tiny_run):
    import numpy as np

    config, run_dir, first = tiny_run
    assert not first.crashed
    for name in ("config.yaml", "environment.json", "summary.md", "summary.csv"):
        assert (run_dir / name).is_file(), name
    env = json.loads((run_dir / "environment.json").read_text())
    assert {"torch", "host", "python", "backend"} <= set(env)
    records = {r["id"]: r for r in (json.loads(p.read_text()) for p in (run_dir / "runs").glob("*.json"))}
    # oracle, original, retrain-floor, ft with D_R, ga with and without D_R; ft without D_R is stored as n/a
    assert len(records) == 1 + 2 + 3 + 1
    assert [r["method"] for r in records.values() if r["status"] == "n/a"] == ["ft"]
    records = {k: r for k, r in records.items() if r["status"] == "ok"}
    oracle = next(r for r in records.values() if r["method"] == "retrain")
    assert oracle["flat"]["gap.gap-rmia"] == 0
    assert oracle["flat"]["gap.gap-mis"] is None  # MIS not audited: n/a, not a 3-term gap
    floor = next(r for r in records.values() if r["method"] == "retrain-floor")
    original = next(r for r in records.values() if r["method"] == "original")
    assert floor["flat"]["acc.forget"] < 100 and 0 < floor["flat"]["gap.gap-rmia"] < original["flat"]["gap.gap-rmia"]
    assert original["seconds"] == 0.0 and original["hparams"] == {}
    assert oracle["flat"]["acc.retain"] == pytest.approx(100.0, abs=2.0)  # a retrained model fits D_R
    for r in records.values():
        assert r["retrain_seconds"] > 0 and r["seconds"] >= 0
        assert sum(r["hist"]["forget"]) == 126 and len(r["roc"]["loss"]["tpr"]) == len(r["roc"]["loss"]["fpr"])
        if r["method"] != "retrain":  # the gap is |m - m_retrain| on the accuracies
            assert r["flat"]["gap.acc.test"] == pytest.approx(abs(r["flat"]["acc.test"] - oracle["flat"]["acc.test"]))
    for r in records.values():  # the report's RMIA curve encloses the AUC the audit reported
        fpr, tpr = np.r_[0.0, r["roc"]["rmia"]["fpr"]], np.r_[0.0, r["roc"]["rmia"]["tpr"]]
        area = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
        assert 100 * area == pytest.approx(r["flat"]["rmia.auc"], abs=2.0), r["method"]
    summary = (run_dir / "summary.md").read_text()
    assert "n/a: ft needs the retain set" in summary
    # both reference rows in both settings' tables, between Retrain and the methods
    for table in summary.split("### ")[1:]:
        assert table.index("| retrain | 1 |") < table.index("| retrain-floor | 1 |") < table.index("| original | 1 |") \
            < table.index("| ga | 1 |")
    assert "untuned" in summary
    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    assert [r["method"] for r in rows if r["setting"] == "without_retain"] == \
        ["retrain", "retrain-floor", "original", "ft", "ga"]


def test_protocol_without_recipe_runs_with_the_recipe_train_chooses_and_records_it(audit_layer, bank, tmp_path,
                                                                                      digits):
    from unlearn.experiments import run_bench
    from unlearn.experiments.jobs import resolve
    from unlearn.training import default_recipe

    raw = tiny_protocol({"ga": {"epochs": 1}}, attacks=("acc", "loss"))
    raw.update(settings=["without_retain"], reference_rows=[])
    del raw["recipe"]
    result = run_bench(parse_config(as_yaml(raw)), tmp_path / "run", bank=bank, progress=False)
    assert not result.crashed and {r["method"] for r in result.records} == {"retrain", "ga"}
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["recipe"] == default_recipe(digits) == "digits"  # what `unlearn train` picks for digits
    named = resolve(parse_config(as_yaml({**raw, "recipe": "digits"})), digits)
    assert {j.id for j in named.oracle + named.runs} == {r["id"] for r in result.records}  # the same jobs


def test_bench_writes_the_forget_sets_it_evaluated(tiny_run, digits):
    # Reproducing an audit of a bench by hand needs its forget set: `unlearn audit --forget` takes this CSV.
    from unlearn import data
    from unlearn.experiments.jobs import make_split

    config, run_dir, _ = tiny_run
    written = sorted(p.name for p in (run_dir / "forget").glob("*.csv"))
    expected = sorted(f"{spec.label}-seed{seed}.csv" for spec in config.forget for seed in spec.seeds)
    assert written == expected and written
    for spec in config.forget:
        for seed in spec.seeds:
            split = make_split(spec, len(digits.train), digits.train.y.numpy(), seed)
            loaded = data.load_forget_csv(run_dir / "forget" / f"{spec.label}-seed{seed}.csv", len(digits.train))
            assert sorted(loaded.forget.tolist()) == sorted(split.forget.tolist())


def test_second_bench_trains_and_runs_nothing(tiny_run, bank, tmp_path):
    from unlearn.bank import ModelBank
    from unlearn.experiments import run_bench

    config, run_dir, first = tiny_run
    before = (run_dir / "summary.csv").read_text()
    first_env = json.loads((run_dir / "environment.json").read_text())
    again = run_bench(config, run_dir, bank=bank, progress=False)
    assert again.trained == 0 and again.executed == 0
    assert (run_dir / "summary.csv").read_text() == before
    # the committed records of a run on a machine whose bank is empty: still nothing to train or run
    empty = ModelBank(tmp_path / "empty-bank")
    elsewhere = run_bench(config, run_dir, bank=empty, progress=False)
    assert elsewhere.trained == 0 and elsewhere.executed == 0 and len(empty) == 0
    assert (run_dir / "summary.csv").read_text() == before
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["earlier"][-2] == {k: v for k, v in first_env.items() if k != "earlier"}  # kept, not overwritten
    for record in (json.loads(p.read_text()) for p in (run_dir / "runs").glob("*.json")):
        if record["status"] == "ok":  # each record says where it was computed
            stamp = record["environment"]
            assert stamp["torch"] == torch.__version__ and stamp["cpus"] >= 1 and stamp["torch_threads"] >= 1
            assert stamp["device"] == "cpu" and set(stamp) >= {"host", "git_commit"}


def test_interrupted_bench_resumes_the_missing_job_identically(tiny_run, bank):
    from unlearn.experiments import run_bench

    config, run_dir, _ = tiny_run
    # A bench killed before a job's record was renamed into place leaves no record for it.
    victim = next(p for p in (run_dir / "runs").glob("ga-*.json"))
    lost = json.loads(victim.read_text())
    victim.unlink()
    resumed = run_bench(config, run_dir, bank=bank, progress=False)
    assert resumed.executed == 1 and resumed.trained == 0
    redone = json.loads(victim.read_text())
    assert redone["flat"] == lost["flat"]  # same seeds, same figures


def test_report_is_self_contained_html(tiny_run):
    from unlearn.experiments.report import write_report

    _, run_dir, _ = tiny_run
    page = write_report(run_dir).read_text()
    assert page.count("<table class='summary'>") == 2  # one per setting
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    # per setting: loss ROC, gap-vs-cost scatter, one histogram pair per method and reference row
    refs = ["confidence histogram original", "confidence histogram retrain-floor"]
    assert sorted(images) == sorted(["ROC loss", "ROC rmia", "gap vs cost", "confidence histogram ft",
                                     "confidence histogram ga", *refs, "ROC loss", "ROC rmia", "gap vs cost",
                                     "confidence histogram ga", *refs])
    assert page.count("<td>original</td>") == page.count("<td>retrain-floor</td>") == 2
    assert "Untuned" in page
    assert "True-class confidence: each method beside Retrain" in page and "P(answer" not in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_markdown_report_links_every_figure_it_wrote_and_holds_the_summary_tables(tiny_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from unlearn.cli import app

    _, source, _ = tiny_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    # A record of an earlier plan (other tuned values) stays in the store but not in the tables.
    stale = json.loads(next((run_dir / "runs").glob("ga-*.json")).read_text())
    stale.update(id="ga-stale", flat={**stale["flat"], "gap.gap-rmia": 99.0})
    (run_dir / "runs" / "ga-stale.json").write_text(json.dumps(stale))
    out = tmp_path / "docs" / "tiny"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--markdown", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "tables.md").read_text()
    assert text.count("| method | n |") == 2  # one table per setting
    overview = text.split("### Overview")[1].split("###")[0]
    # a row per method and reference row, a cell per setting; ft cannot run without D_R
    assert "| r10, with retain | r10, without retain |" in overview
    assert re.search(r"\| ft \| [0-9.]+( \(nothing\))? \| n/a \|", overview)
    assert overview.count("\n| ") == 2 + 5  # header, rule, the 3 reference rows, ft, ga
    assert (run_dir / "summary.md").read_text().strip() in text  # the very tables bench wrote
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    written = sorted(p.name for p in out.glob("*.png"))
    # per setting: ROC per attack (loss, rmia), gap vs cost, one grid of confidence histograms
    assert sorted(linked) == written and len(written) == 2 * 4
    assert all((out / name).read_bytes()[:4] == b"\x89PNG" for name in written)


def test_cli_refuses_bad_config_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from unlearn.cli import app

    raw = tiny_protocol()
    raw["methods"]["no-such-method"] = None
    bad = tmp_path / "bad.yaml"
    bad.write_text(as_yaml(raw))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["bench", str(bad), "--out", str(out)])
    assert isinstance(result.exception, UnlearnInputError)
    assert "methods.no-such-method" in str(result.exception)
    assert not out.exists()


def test_report_of_a_non_run_directory_is_refused(tmp_path):
    from unlearn.experiments.report import write_report

    with pytest.raises(UnlearnInputError, match="not a run directory"):
        write_report(tmp_path)


# ---- tuning ----------------------------------------------------------------------------------

def test_tune_finds_the_best_of_its_trials_and_writes_a_loadable_fragment(audit_layer, tmp_path, bank):
    from unlearn.experiments.tune import tune

    raw = tiny_protocol()
    raw["tune"] = {"trials": 4, "forget_seed": 7, "lr_range": [0.001, 0.5], "space": {"ft": {"lr": [0.5, 0.01, 0.001]}}}
    config = parse_config(as_yaml(raw))
    result = tune(config, "ft", tmp_path / "tune", bank=bank, progress=False)
    gaps = [t["gap-rmia"] for t in result.trials if t["status"] == "ok"]
    assert len(result.trials) == 4 and result.best_gap == min(gaps)
    assert result.trials[0]["lr"] == 0.01  # the first trial is the protocol's own value
    assert result.best_params["lr"] in (0.5, 0.01, 0.001) and result.best_params["epochs"] == 1
    # the search ran on its own forget set, not on the benchmark's, and kept every trial
    records = [json.loads(p.read_text()) for p in (tmp_path / "tune" / "tune" / "runs").glob("*.json")]
    assert {r["forget_seed"] for r in records} == {7}
    assert json.loads((tmp_path / "tune" / "tuning.json").read_text())["studies"][0]["best"] == result.best_params
    fragment = yaml.safe_load(result.fragment.read_text())
    raw["methods"].update(fragment["methods"])
    assert parse_config(as_yaml(raw)).methods["ft"] == result.best_params


def test_tune_refuses_a_method_outside_the_protocol(tmp_path):
    from unlearn.experiments.tune import tune

    with pytest.raises(UnlearnInputError, match="--method rl"):
        tune(parse_config(as_yaml(tiny_protocol())), "rl", tmp_path)

