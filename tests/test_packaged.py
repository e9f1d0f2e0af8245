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

from unlearn import protocols
from unlearn.cli import app, main
from unlearn.experiments import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "unlearn" / "protocols"
REGENERATE = "out of date: run `python tools/package_data.py`"


def test_packaged_protocols_are_byte_identical_copies_of_configs():
    configs = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(p.name for p in PACKAGE.glob("*.yaml")) == configs, REGENERATE
    for name in configs:
        assert (PACKAGE / name).read_bytes() == (ROOT / "configs" / name).read_bytes(), f"{name}: {REGENERATE}"
    assert protocols.names() == sorted(n[:-len(".yaml")] for n in configs)


def test_mnist1d_preset_is_the_committed_tuning_record_of_the_demo_forget_set():
    record = json.loads((ROOT / "results" / "mnist1d" / "tuning.json").read_text())
    preset = protocols.load_preset("mnist1d")
    assert preset == protocols.preset_from_tuning(record, "mnist1d", "results/mnist1d/tuning.json"), REGENERATE
    # what the demo shows: every study of the demo's forget set, in both settings, tuned on seed 0
    demo_studies = [s for s in record["studies"] if s["forget"] == protocols.PRESET_FORGET]
    assert len(preset["studies"]) == len(demo_studies) > 0 and preset["model_seed"] == record["model_seed"]
    ft = next(s for s in demo_studies if s["method"] == "ft" and s["setting"] == "with_retain")
    assert protocols.preset_hparams(preset, "with_retain", "ft") == ft["best"]
    assert protocols.preset_hparams(preset, "without_retain", "ft") is None  # ft needs D_R: never tuned without


def test_package_data_is_declared_so_pip_installs_it():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert set(declared["unlearn.protocols"]) >= {"*.yaml", "*.json"}


def test_bench_runs_a_packaged_protocol_by_name_and_lists_them():
    assert protocols.load_protocol("mnist1d") == load_config(ROOT / "configs" / "mnist1d.yaml")
    listed = CliRunner().invoke(app, ["bench", "--list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == protocols.names()


@pytest.mark.parametrize("given", ["no-such-protocol", "configs/missing.yaml"])
def test_bench_refuses_what_is_neither_a_file_nor_a_packaged_protocol(given, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", given, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "neither a config file nor a packaged protocol" in error and "mnist1d-class" in error
    assert not (tmp_path / "run").exists()
