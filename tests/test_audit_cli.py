"""`unlearn audit`: table, JSON with every figure, and exit code 2 with a reason on bad input."""

import json

import numpy as np
import pytest

from unlearn import audit, data, models, training
from unlearn.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits, digits_split, digits_original, digits_retrained):
    root = tmp_path_factory.mktemp("audit-cli")
    models.save_model(digits_original, root / "original.safetensors")
    models.save_model(digits_retrained, root / "retrained.safetensors")
    data.save_forget_csv(root / "forget.csv", digits_split.forget)
    data.save_forget_csv(root / "outside.csv", [3, len(digits.train) + 7])
    other = data.load("digits", test_fraction=0.5)
    foreign = training.train("mlp", other, np.arange(100), training.get_recipe("digits").with_(epochs=1),
                             progress=False)
    models.save_model(foreign, root / "foreign.safetensors")
    return root


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_json_has_every_figure_and_the_gap(files, capsys, bank):
    code, out, _ = run(["audit", "--model", str(files / "original.safetensors"), "--forget", str(files / "forget.csv"),
                        "--reference", str(files / "retrained.safetensors"), "--attacks", "acc,mis,loss,rmia",
                        "--n-reference", "2", "--bank", str(bank.root), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"acc", "test_side", "mis", "loss", "rmia", "gap"}
    assert result["acc"]["forget"] == 100.0 and result["acc"]["ua"] == 0.0
    assert {"auc", "auc_low", "auc_high", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "settings",
            "n_reference"} <= set(result["rmia"])
    assert result["rmia"]["settings"] == audit.RMIASettings().to_dict()
    assert result["gap"]["acc.forget"] > 0 and 0 <= result["gap"]["gap-rmia"] <= 100


def test_table_and_plot(files, capsys, bank, tmp_path):
    code, out, _ = run(["audit", "--model", str(files / "retrained.safetensors"), "--forget",
                        str(files / "forget.csv"), "--attacks", "acc,confidence", "--plot", str(tmp_path / "h.svg"),
                        "--bank", str(bank.root)], capsys)
    assert code == 0
    assert "acc.forget" in out and "confidence.ks" in out
    assert (tmp_path / "h.svg").read_bytes().lstrip().startswith(b"<?xml")


@pytest.mark.parametrize("extra, forget, message", [
    ([], "outside.csv", "outside the training set"),
    (["--reference", "{files}/foreign.safetensors"], "forget.csv", "another dataset"),
    (["--attacks", "acc,lira", "--n-reference", "1"], "forget.csv", "at least 2 reference models"),
    (["--attacks", "acc,rmia", "--gamma", "-1"], "forget.csv", "gamma must be positive"),
    (["--attacks", "acc,rmia", "--offline-a", "half"], "forget.csv", "--offline-a"),
    (["--attacks", "acc,epsilon"], "forget.csv", "--method"),
    (["--attacks", "acc,ouija"], "forget.csv", "unknown attack"),
])
def test_bad_input_exits_2_with_a_reason(extra, forget, message, files, capsys, tmp_path):
    # A private, empty bank: the session's bank is shared with the other xdist worker, which may
    # add models to it while this test runs.
    from unlearn.bank import ModelBank

    bank = ModelBank(tmp_path / "bank")
    args = ["audit", "--model", str(files / "original.safetensors"), "--forget", str(files / forget),
            "--bank", str(bank.root)] + [a.format(files=files) for a in extra]
    code, _, err = run(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert len(bank) == 0  # refused before any reference model was trained
