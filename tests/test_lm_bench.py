"""The language-model bench and CLI: an LM protocol through `unlearn bench` (reference rows, tuning,
verdicts, report) and `unlearn lm train|forget|audit` on real tiny models, with their bad input.

Everything runs on `facts-tiny` (30 entities) with a one-layer GPT-2 trained in the test: seconds."""

from __future__ import annotations

import json

import pytest
import yaml

from unlearn.cli import main
from unlearn.errors import UnlearnInputError
from unlearn.experiments import parse_config, run_bench
from unlearn.experiments.lm_config import LMConfig
from unlearn.experiments.report import write_report
from unlearn.experiments.summary import BELOW, LITTLE, NOTHING, WORSE
from unlearn.lm.models import TINY_RECIPE

TINY = {k: v for k, v in TINY_RECIPE.to_dict().items() if k in ("vocab_size", "n_layer", "n_head", "n_embd",
                                                                 "batch_size")} | {"epochs": 1}
RECIPE_SETS = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]


def tiny_protocol(**changes) -> dict:
    protocol = {"name": "lm-tiny", "corpus": "facts-tiny", "recipe": TINY, "seeds": [0],
                "forget": [{"fraction": 0.2, "seeds": [0]}],
                "methods": {"retrain": None, "ga": {"epochs": 1, "lr": 1e-2}},
                "audit": {"max_questions": 12}, "tune": {"trials": 1}, "torch_threads": 1}
    return {**protocol, **changes}


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_an_lm_protocol_runs_through_bench_with_reference_rows_tuning_and_verdicts(tmp_path, bank):
    config = parse_config(yaml.safe_dump(tiny_protocol()), source="tiny")
    assert isinstance(config, LMConfig)
    result = run_bench(config, tmp_path / "run", bank=bank, progress=False)
    assert not result.crashed
    rows = {r["method"]: r for r in result.rows}
    assert list(rows) == ["retrain", "retrain-floor", "original", "ga"]
    oracle = next(r for r in result.records if r["method"] == "retrain")
    # The oracle is its own reference: forget quality 1 (identical truth ratios), PrivLeak and gap 0.
    assert oracle["flat"]["forget_quality"] == pytest.approx(1.0)
    assert oracle["flat"]["privleak"] == pytest.approx(0.0) and oracle["flat"]["gap.gap-lm"] == pytest.approx(0.0)
    assert rows["ga"]["verdict"] in (BELOW, LITTLE, NOTHING, WORSE)
    assert rows["ga"]["tuned"] is True
    tuning = json.loads((tmp_path / "run" / "tuning.json").read_text())
    assert tuning["objective"] == "gap-lm" and tuning["forget_seed"] == 1000
    # Its first trial is the protocol's own point (classifier tuning's rule).
    assert tuning["studies"][0]["trials"][0]["params"]["lr"] == pytest.approx(1e-2)
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "gap-lm" in summary and "Min-K%++ AUC" in summary
    page = write_report(tmp_path / "run").read_text()
    assert "retrain-floor" in page
    # Its histograms are of the answer probability, and say so (a classifier's say true-class confidence).
    assert "Answer probability P(answer | question)^(1/len)" in page and "answer probability histogram ga" in page
    assert "true-class confidence" not in page.lower() and "GPT-2 trained on the corpus, 1 layers" in page
    # Resuming reruns nothing: every record is in the store.
    again = run_bench(config, tmp_path / "run", bank=bank, progress=False)
    assert again.executed == 0 and again.trained == 0


def _tuning_inputs(protocol: dict) -> list[tuple]:
    """Everything a tuning trial's score depends on, per trial job: the job's identity (method,
    forget set, seeds), its split (forget, neighbour, retain and non-member entities) and the
    entities given to the method as non-members."""
    from unlearn.experiments.lm_bench import lm_tuning_protocol
    from unlearn.experiments.lm_jobs import resolve_lm

    config = parse_config(yaml.safe_dump(protocol), source="lm")
    plan = resolve_lm(lm_tuning_protocol(config, ["ga"]), tuning=True)
    return [(job.method, job.forget, job.forget_seed, job.model_seed, plan.splits[job.split_key], plan.given)
            for job in plan.oracle + plan.runs]


@pytest.mark.parametrize("evaluation", [
    {"seeds": [1, 2]},
    {"forget": [{"fraction": 0.2, "seeds": [5, 6]}]},
    {"seeds": [3], "forget": [{"fraction": 0.2, "seeds": [7]}]},
])
def test_lm_tuning_is_apart_from_evaluation(evaluation):
    """Procedure 5 for language models: changing the evaluation's model seeds or forget draws
    changes nothing a tuning trial depends on; the tuning original is a seed of its own, its
    forget set meets no evaluation forget set, its non-members none of the evaluation's."""
    from unlearn.experiments.lm_jobs import resolve_lm

    base = tiny_protocol(forget=[{"fraction": 0.2, "seeds": [0, 1]}])
    assert _tuning_inputs(base) == _tuning_inputs({**base, **evaluation})
    for protocol in (base, {**base, **evaluation}):
        config = parse_config(yaml.safe_dump(protocol), source="lm")
        tuning_jobs = _tuning_inputs(protocol)
        assert {job[3] for job in tuning_jobs} == {config.tune.model_seed}
        assert config.tune.model_seed not in config.seeds
        tuning_split = tuning_jobs[0][4]
        evaluation_plan = resolve_lm(config)
        for split in evaluation_plan.splits.values():
            assert not set(split.forget) & set(tuning_split.forget)
            assert not set(split.holdout) & set(tuning_split.holdout)
            assert not set(evaluation_plan.given) & set(tuning_split.holdout)


def test_lm_tuning_refuses_an_evaluation_model_seed():
    with pytest.raises(UnlearnInputError, match="tune.model_seed 0 is a model seed"):
        parse_config(yaml.safe_dump(tiny_protocol(tune={"trials": 1, "model_seed": 0})), source="lm")
    with pytest.raises(UnlearnInputError, match="tune.model_seed 1000 is a model seed"):
        parse_config(yaml.safe_dump(tiny_protocol(tune={"trials": 1, "model_seed": 1000})), source="lm")


def test_each_family_refuses_the_others_methods():
    with pytest.raises(UnlearnInputError, match="methods.salun: 'salun' is a classifier method"):
        parse_config(yaml.safe_dump(tiny_protocol(methods={"retrain": None, "salun": {}})), source="lm")
    classifier = {"name": "c", "dataset": "digits", "model": {"arch": "mlp"}, "forget": [{"fraction": 0.1}],
                  "methods": {"retrain": None, "npo": {}}}
    with pytest.raises(UnlearnInputError, match="methods.npo: 'npo' is a language-model method"):
        parse_config(yaml.safe_dump(classifier), source="classifier")
    with pytest.raises(UnlearnInputError, match="unknown corpus"):
        parse_config(yaml.safe_dump(tiny_protocol(corpus="tofu")), source="lm")
    with pytest.raises(UnlearnInputError, match="recipe"):
        parse_config(yaml.safe_dump(tiny_protocol(recipe={"layers": 2})), source="lm")


def test_bench_refuses_a_protocol_with_a_method_of_the_other_family_writing_nothing(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tiny_protocol(methods={"retrain": None, "scrub": {}})))
    code, _, err = run(["bench", str(path), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "classifier method" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A facts-tiny model directory written by `unlearn lm train`, and its forget list."""
    root = tmp_path_factory.mktemp("lm")
    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "train", "--corpus", "facts-tiny", *RECIPE_SETS, "--bank", str(root / "bank"),
              "--out", str(root / "model")])
    assert exit_info.value.code in (0, None)
    (root / "forget.txt").write_text("person-000\n")
    return root


def test_lm_cli_trains_forgets_and_audits_a_model_directory(tiny_model, tmp_path, capsys):
    out = tmp_path / "unlearned"
    code, stdout, _ = run(["lm", "forget", str(tiny_model / "model"), "--method", "npo", "--set", "epochs=1",
                           "--corpus", "facts-tiny", "--forget", str(tiny_model / "forget.txt"), "--out", str(out)],
                          capsys)
    assert code == 0 and (out / "config.json").is_file() and "saved to" in stdout
    report = tmp_path / "audit.json"
    code, _, _ = run(["lm", "audit", str(out), "--reference", str(tiny_model / "model"), "--corpus", "facts-tiny",
                      "--forget", str(tiny_model / "forget.txt"), "--json", str(report)], capsys)
    figures = json.loads(report.read_text())
    assert code == 0 and 0 <= figures["forget_quality"] <= 1 and "gap-lm" in figures["gap"]


@pytest.mark.parametrize("case, message", [
    ("no-tokenizer", "tokenizer"),
    ("no-config", "no config.json"),
    ("missing-field", "missing field 'answer'"),
    ("text-without-field", "missing field 'text'"),
    ("unknown-id", "forget id 'person-999' is not in corpus"),
    ("unknown-id-in-data", "forget id 'zed' is not in"),
    ("classifier-method", "a classifier method"),
])
def test_lm_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_model, tmp_path, capsys, case, message):
    import shutil

    model, forget = tiny_model / "model", tiny_model / "forget.txt"
    args = ["--method", "ga", "--corpus", "facts-tiny", "--forget", str(forget)]
    if case == "no-tokenizer":
        model = tmp_path / "bare"
        shutil.copytree(tiny_model / "model", model)
        for f in model.iterdir():
            if "token" in f.name or f.name in ("vocab.json", "merges.txt"):
                f.unlink()
    elif case == "missing-field":
        data = tmp_path / "qa.jsonl"
        data.write_text('{"id": "a", "question": "Who?", "answer": "Vel"}\n{"id": "b", "question": "Where?"}\n')
        (tmp_path / "ids.txt").write_text("a\n")
        args = ["--method", "ga", "--data", str(data), "--forget", str(tmp_path / "ids.txt")]
    elif case == "no-config":
        model = tmp_path / "bare"
        shutil.copytree(tiny_model / "model", model)
        (model / "config.json").unlink()
    elif case in ("text-without-field", "unknown-id-in-data"):
        data = tmp_path / "texts.jsonl"
        second = '{"id": "b"}' if case == "text-without-field" else '{"id": "b", "text": "Ost lies east."}'
        data.write_text('{"id": "a", "text": "Vel was born in Ost."}\n' + second + "\n")
        (tmp_path / "ids.txt").write_text("a\n" if case == "text-without-field" else "zed\n")
        args = ["--method", "ga", "--data", str(data), "--forget", str(tmp_path / "ids.txt")]
    elif case == "unknown-id":
        (tmp_path / "ids.txt").write_text("person-999\n")
        args = ["--method", "ga", "--corpus", "facts-tiny", "--forget", str(tmp_path / "ids.txt")]
    elif case == "classifier-method":
        args[1] = "salun"
    out = tmp_path / "out"
    code, _, err = run(["lm", "forget", str(model), *args, "--out", str(out)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_lm_paired_draws_pair_each_model_seed_with_its_forget_seed():
    from unlearn.experiments.lm_jobs import resolve_lm

    paired = tiny_protocol(seeds=[0, 1], draws="paired", forget=[{"fraction": 0.2, "seeds": [3, 4]}])
    plan = resolve_lm(parse_config(yaml.safe_dump(paired), source="lm"))
    assert plan.retrains() == [(("forget20", 3), 0), (("forget20", 4), 1)]
    assert [(j.forget_seed, j.model_seed, j.run_seed) for j in plan.runs if j.method == "ga"] == [(3, 0, 0), (4, 1, 1)]
    crossed = resolve_lm(parse_config(yaml.safe_dump({**paired, "draws": "crossed"}), source="lm"))
    assert len(crossed.retrains()) == 4
    with pytest.raises(UnlearnInputError, match="one seed per model seed"):
        parse_config(yaml.safe_dump({**paired, "forget": [{"fraction": 0.2, "seeds": [3]}]}), source="lm")


@pytest.mark.slow
def test_lm_demo_in_two_processes_prints_the_table_and_agrees_with_one(tmp_path, capsys):
    """`unlearn lm demo` (tiny recipe, facts-tiny) with its jobs in two worker processes prints
    the table with the reference rows and every method, ran its jobs in both workers, and gives
    the records the same jobs give run one after another in this process (one torch thread in
    both: the same float sums)."""
    import torch

    from unlearn.lm import methods

    def demo(name, workers):
        args = ["lm", "demo", "--corpus", "facts-tiny", *RECIPE_SETS, "--out", str(tmp_path / name),
                "--bank", str(tmp_path / f"bank-{name}"), "--workers", str(workers), "--quiet"]
        return run(args, capsys)

    code, out, _ = demo("pool", 2)
    assert code == 0, out
    printed = {line.split()[0] for line in out.splitlines() if line.split()}
    assert {"retrain", "retrain-floor", "original", *methods.available()} <= printed
    timings = json.loads((tmp_path / "pool" / "timings.json").read_text())
    assert timings["backend"] == "processes" and len({job["pid"] for job in timings["jobs"]}) == 2
    # The floor retrain trains in its own row's job, after the original and the retrain.
    trained = [job["job"] for job in timings["jobs"] if job["fn"] == "lm_train_job"]
    assert sorted(trained) == ["train original seed 0", "train retrain seed 0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, _, _ = demo("one", 1)
    finally:
        torch.set_num_threads(threads)
    assert code == 0

    def records(name):
        return {p.name: json.loads(p.read_text()) for p in (tmp_path / name / "runs").glob("*.json")}

    pool, one = records("pool"), records("one")
    assert set(pool) == set(one) and len(pool) == 2 + 1 + len(methods.available())
    for name, record in pool.items():
        assert record["status"] == one[name]["status"]
        assert record.get("flat") == one[name].get("flat"), record["method"]


def test_report_histogram_axes_name_what_each_family_counts():
    """The drawn panel's axis and legend: an LM run's answer probability on retain, forget and
    holdout questions; a classifier run's true-class confidence on D_R, D_F, D_T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unlearn.experiments.report import Histogram, _hist_panel

    runs = [{"hist_edges": [0.0, 0.5, 1.0], "hist": {"retain": [1, 3], "forget": [2, 2], "test": [4, 0]}}]
    for config, axis, legend in [
        (tiny_protocol(), "P(answer | question)^(1/len)", ["retain", "forget", "holdout"]),
        ({"name": "c", "dataset": "digits", "model": {"arch": "mlp"}}, "true-class confidence", ["D_R", "D_F", "D_T"]),
    ]:
        fig, ax = plt.subplots()
        _hist_panel(ax, runs, "ga", Histogram(config))
        assert ax.get_xlabel() == axis and [line.get_label() for line in ax.get_lines()] == legend
        plt.close(fig)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"question": "Who?", "answer": "Vel"\n', ":1: not JSON"),
    ('["Who?", "Vel"]\n', ":1: expected a JSON object"),
])
def test_lm_train_on_bad_user_data_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, content, message):
    """`unlearn lm train --data` without a forget list (train on all of it) checks the file as
    `--forget` does: one line naming the file and line, exit 2, no model directory, no bank."""
    data = tmp_path / "qa.jsonl"
    if content is not None:
        data.write_text(content)
    out, bank = tmp_path / "model", tmp_path / "bank"
    code, _, err = run(["lm", "train", "--data", str(data), *RECIPE_SETS, "--bank", str(bank), "--out", str(out)],
                       capsys)
    assert code == 2 and message in err and str(data) in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not bank.exists()


def test_each_family_cli_refuses_the_others_methods_writing_nothing(tmp_path, capsys):
    """`unlearn bench` with a classifier protocol naming an LM method, and `unlearn forget` (the
    classifier verb) given an LM method: one line saying which family it is, exit 2, nothing written.
    (The reverse of each: `test_bench_refuses_a_protocol_with_a_method_of_the_other_family_writing_nothing`
    and the `classifier-method` case above.)"""
    protocol = tmp_path / "c.yaml"
    protocol.write_text(yaml.safe_dump({"name": "c", "dataset": "digits", "model": {"arch": "mlp"},
                                        "forget": [{"fraction": 0.1}], "methods": {"retrain": None, "simnpo": {}}}))
    code, _, err = run(["bench", str(protocol), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "'simnpo' is a language-model method" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    (tmp_path / "forget.csv").write_text("index\n0\n")
    code, _, err = run(["forget", "--model", str(tmp_path / "absent.safetensors"), "--forget",
                        str(tmp_path / "forget.csv"), "--method", "npo", "--out", str(tmp_path / "new.safetensors")],
                       capsys)
    assert code == 2 and "npo: a language-model method" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new.safetensors").exists()


def test_the_relearning_audit_runs_in_the_bench_records_its_settings_and_draws_its_curves(tmp_path, bank):
    """`audit: relearn:` runs both relearning attacks on every row with the protocol's budget,
    recovery read against the oracle's own run; the report draws accuracy vs steps. Without the
    key a protocol dumps, and so hashes, as before the key existed (runs started then resume)."""
    plain = parse_config(yaml.safe_dump(tiny_protocol(tune={"trials": 0})), source="tiny")
    assert "relearn" not in plain.audit.model_dump()
    config = parse_config(yaml.safe_dump(tiny_protocol(tune={"trials": 0}, audit={
        "max_questions": 12, "relearn": {"passes": [0, 1, 2]}})), source="tiny")
    result = run_bench(config, tmp_path / "run", bank=bank, progress=False)
    assert not result.crashed
    relearned = {r["method"]: r["metrics"]["relearn"] for r in result.records if r["status"] == "ok"}
    assert set(relearned) == {"retrain", "retrain-floor", "original", "ga"}
    oracle = relearned["retrain"]
    assert oracle["settings"]["passes"] == [0, 1, 2]
    assert oracle["settings"]["rate"] == pytest.approx(TINY_RECIPE.lr / 10)
    for name, run in relearned.items():
        assert run["settings"] == oracle["settings"]
        for attack in ("facts", "benign"):
            assert run["recovery"][attack]["curve"] == pytest.approx(
                [a - b for a, b in zip(run[attack]["accuracy"], oracle[attack]["accuracy"])]), name
    page = write_report(tmp_path / "run").read_text()
    assert 'alt="relearning facts"' in page and 'alt="relearning benign"' in page
