"""What a pip-installed user gets: the published protocols and the demo's tuned preset, inside the package.

The package's copies are derived from the repository (configs/, results/) by
`python tools/package_data.py`; these tests fail while they differ, so a changed protocol or a
re-run tuning needs that one command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from unlearn import published
from unlearn.cli import app, main
from unlearn.experiments import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "unlearn" / "published"
REGENERATE = "out of date: run `python tools/package_data.py`"


def test_packaged_protocols_are_byte_identical_copies_of_configs():
    configs = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(p.name for p in PACKAGE.glob("*.yaml")) == configs, REGENERATE
    for name in configs:
        assert (PACKAGE / name).read_bytes() == (ROOT / "configs" / name).read_bytes(), f"{name}: {REGENERATE}"
    assert published.names() == sorted(n[:-len(".yaml")] for n in configs)


def test_mnist1d_preset_is_the_committed_tuning_record_of_the_demo_forget_set():
    record = json.loads((ROOT / "results" / "mnist1d" / "tuning.json").read_text())
    preset = published.load_preset("mnist1d")
    assert preset == published.preset_from_tuning(record, "mnist1d", "results/mnist1d/tuning.json"), REGENERATE
    # what the demo shows: every study of the demo's forget set, in both settings, tuned on seed 0
    demo_studies = [s for s in record["studies"] if s["forget"] == published.PRESET_FORGET]
    assert len(preset["studies"]) == len(demo_studies) > 0 and preset["model_seed"] == record["model_seed"]
    ft = next(s for s in demo_studies if s["method"] == "ft" and s["setting"] == "with_retain")
    assert published.preset_hparams(preset, "with_retain", "ft") == ft["best"]
    assert published.preset_hparams(preset, "without_retain", "ft") is None  # ft needs D_R: never tuned without


def test_package_data_is_declared_so_pip_installs_it():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert set(declared["unlearn.published"]) >= {"*.yaml", "*.json"}


def test_bench_runs_a_packaged_protocol_by_name_and_lists_them():
    assert published.load_protocol("mnist1d") == load_config(ROOT / "configs" / "mnist1d.yaml")
    listed = CliRunner().invoke(app, ["bench", "--list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == published.names()


@pytest.mark.parametrize("given", ["no-such-protocol", "configs/missing.yaml"])
def test_bench_refuses_what_is_neither_a_file_nor_a_packaged_protocol(given, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", given, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "neither a config file nor a packaged protocol" in error and "mnist1d-class" in error
    assert not (tmp_path / "run").exists()


def test_demo_runs_the_preset_values_and_its_caption_says_where_they_come_from(mnist1d):
    import yaml

    from unlearn.cli.demo import DEMO_PRESETS, demo_protocol
    from unlearn.experiments import parse_config
    from unlearn.experiments.jobs import resolve
    from unlearn.experiments.summary import caption
    from unlearn.experiments.tune import tuned_hparams

    preset = published.load_preset(DEMO_PRESETS["mnist1d"])
    config = parse_config(yaml.safe_dump(demo_protocol()))
    plan = resolve(config, mnist1d, tuned_hparams(preset))
    tuned = {(j.setting, j.method): j.hparams for j in plan.runs if j.tuned}
    studies = {(s["setting"], s["method"]): s["best"] for s in preset["studies"]}
    assert tuned == studies  # every tuned study of the demo's forget set runs, with its values
    text = caption([{"n": 1}], preset)
    assert "tuned" in text and "results/mnist1d/tuning.json" in text
    assert f"model seed {preset['model_seed']}" in text  # the seed the committed tuning ran on
    untuned = resolve(config, mnist1d)  # --untuned: the papers' defaults, labelled so
    assert not any(j.tuned for j in untuned.runs) and "untuned" in caption([{"n": 1}], None)


def test_forget_preset_applies_the_tuned_values_and_set_overrides_them(mnist1d, mnist1d_original, mnist1d_split,
                                                                      tmp_path):
    from unlearn import data, models

    model_file, forget_csv = tmp_path / "original.safetensors", tmp_path / "forget.csv"
    models.save_model(mnist1d_original, model_file)
    data.save_forget_csv(forget_csv, mnist1d_split.forget[:50])
    out = tmp_path / "ft.safetensors"
    args = ["forget", "--model", str(model_file), "--forget", str(forget_csv), "--method", "ft", "--out", str(out),
            "--preset", "mnist1d", "--set", "epochs=1", "--dataset", "mnist1d"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    applied = json.loads(models.read_spec(out)["training"]["unlearning"])["hyperparameters"]
    expected = published.preset_hparams(published.load_preset("mnist1d"), "with_retain", "ft")
    assert applied["lr"] == expected["lr"] and applied["epochs"] == 1  # the preset's lr, --set's epochs


def test_forget_preset_without_values_for_the_method_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["forget", "--model", str(tmp_path / "m.safetensors"), "--forget", str(tmp_path / "f.csv"),
              "--method", "retrain", "--out", str(tmp_path / "out.safetensors"), "--preset", "mnist1d"])
    assert exit_.value.code == 2 and "no tuned values for retrain" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()
