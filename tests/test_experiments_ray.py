"""The Ray backend runs the same jobs as the local one and gets the same figures.

A real local Ray instance (2 CPUs) trains the originals and retrains into a fresh bank and runs the
unlearning and audit jobs as tasks; the local backend runs the same protocol in this process with
another bank. Same seeds, so every record must agree.
"""

from __future__ import annotations

import pytest
import torch
import yaml


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "unlearn[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    yield ray
    ray.shutdown()


def test_ray_and_local_backends_agree_on_digits(ray_instance, tmp_path, bank):
    from test_experiments import tiny_protocol

    from unlearn import audit
    from unlearn.bank import ModelBank
    from unlearn.experiments import parse_config, run_bench

    if not hasattr(audit, "evaluate"):
        pytest.skip("unlearn.audit.evaluate has not landed yet; the bench audits through it")
    # One method in both settings: two trainings, an oracle job and two run jobs cover every
    # kind of work; more jobs would only cost time.
    raw = tiny_protocol({"ga": {"epochs": 1}})
    # Three tuning trials per setting (the default lr and both ends of the range): trials are jobs
    # too, run by the same executor.
    raw["tune"] = {"trials": 3, "forget_seed": 5, "lr_range": [1e-4, 0.1], "space": {"ga": {"lr": [1e-4, 1e-2, 0.1]}}}
    config = parse_config(yaml.safe_dump(raw, sort_keys=False))
    # Ray workers run one torch thread per task; so does the local run, so the float sums match.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_bench(config, tmp_path / "local", bank=bank, progress=False)
    finally:
        torch.set_num_threads(threads)
    ray_bank = ModelBank(tmp_path / "ray-bank")
    remote = run_bench(config, tmp_path / "ray", backend="ray", bank=ray_bank, progress=False)
    assert not local.crashed and not remote.crashed
    # originals and retrains (stored by the driver) and RMIA's reference models all in the fresh bank
    assert remote.trained == len(ray_bank) >= 2 + config.audit.n_reference
    def trials(result):  # the same values proposed and scored in the same order
        return [(t["params"], t["score"]) for study in result.tuning["studies"] for t in study["trials"]]

    assert [p for p, _ in trials(remote)] == [p for p, _ in trials(local)]
    assert [s for _, s in trials(remote)] == pytest.approx([s for _, s in trials(local)], abs=1e-6)
    by_id = {r["id"]: r for r in local.records}
    assert {r["id"] for r in remote.records} == set(by_id)
    for r in remote.records:
        if r["status"] != "ok":
            assert r["status"] == by_id[r["id"]]["status"]
            continue
        assert r["flat"] == pytest.approx(by_id[r["id"]]["flat"], abs=1e-6), r["method"]


def test_ray_and_local_backends_agree_on_an_lm_protocol(ray_instance, tmp_path):
    """The LM bench's jobs as Ray tasks (`--backend ray`): a tiny facts-tiny protocol with a tuning
    trial, the reference rows (the floor retrain trains inside its row's task) and one method gives
    the records the local backend gives, job for job."""
    from test_lm_bench import tiny_protocol

    from unlearn.bank import ModelBank
    from unlearn.experiments import parse_config, run_bench

    config = parse_config(yaml.safe_dump(tiny_protocol(), sort_keys=False), source="lm-tiny")
    local = run_bench(config, tmp_path / "local", bank=ModelBank(tmp_path / "local-bank"), progress=False)
    ray_bank = ModelBank(tmp_path / "ray-bank")
    remote = run_bench(config, tmp_path / "ray", backend="ray", bank=ray_bank, progress=False)
    assert not local.crashed and not remote.crashed
    # the tuning original and retrain, the evaluation original, retrain and floor: all trained by tasks
    assert remote.trained == len(ray_bank) == local.trained == 5
    assert [(t["params"], t["score"]) for s in remote.tuning["studies"] for t in s["trials"]] == \
        [(t["params"], t["score"]) for s in local.tuning["studies"] for t in s["trials"]]
    by_id = {r["id"]: r for r in local.records}
    assert {r["id"] for r in remote.records} == set(by_id)
    assert {r["method"] for r in remote.records} == {"retrain", "retrain-floor", "original", "ga"}
    for r in remote.records:
        assert r["status"] == by_id[r["id"]]["status"] == "ok"
        assert r["flat"] == pytest.approx(by_id[r["id"]]["flat"], abs=1e-6), r["method"]
