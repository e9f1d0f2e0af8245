"""What a newcomer meets first: `unlearn split`, `train`'s recipe and overrides, `audit`'s wording and
its test half, and `import unlearn` reaching every layer. Each was a rough edge a user hit."""

import json
import subprocess
import sys

import numpy as np
import pytest

from unlearn import audit, data, models
from unlearn.cli import main


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_split_writes_the_same_forget_set_a_bench_draws(tmp_path, capsys, mnist1d):
    out = tmp_path / "forget.csv"
    code, stdout, _ = run(["split", "--fraction", "0.1", "--seed", "3", "--out", str(out)], capsys)
    assert code == 0 and "400 of 4000 mnist1d" in stdout.replace("\n", " ")
    written = data.load_forget_csv(out, len(mnist1d.train)).forget
    np.testing.assert_array_equal(np.sort(written), np.sort(data.random_forget(4000, fraction=0.1, seed=3).forget))


def test_split_by_class_takes_every_sample_of_those_classes(tmp_path, capsys, digits):
    out = tmp_path / "classes.csv"
    code, _, _ = run(["split", "--dataset", "digits", "--classes", "3,7", "--out", str(out)], capsys)
    assert code == 0
    written = data.load_forget_csv(out, len(digits.train)).forget
    labels = digits.train.y.numpy()
    assert set(labels[written]) == {3, 7} and len(written) == int(np.isin(labels, [3, 7]).sum())


@pytest.mark.parametrize("args, message", [
    (["--fraction", "0.1", "--classes", "1"], "exactly one of"),
    ([], "exactly one of"),
    (["--classes", "12"], "class indices must lie in 0..9"),
    (["--fraction", "1.5"], "fraction"),
])
def test_split_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "f.csv"
    code, _, err = run(["split", "--dataset", "digits", "--out", str(out), *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_train_prints_its_recipe_and_applies_overrides(tmp_path, capsys, digits):
    out = tmp_path / "m.safetensors"
    code, stdout, _ = run(["train", "--dataset", "digits", "--set", "epochs=2", "--set", "lr=0.01",
                           "--out", str(out)], capsys)
    assert code == 0
    flat = stdout.replace("\n", " ")
    assert "recipe 'digits' with epochs=2, lr=0.01" in flat and "'epochs': 2" in flat
    assert models.load_model(out, digits).spec["training"]["recipe"]["epochs"] == 2


def test_train_refuses_an_unknown_recipe_key_by_name(capsys):
    code, _, err = run(["train", "--dataset", "digits", "--set", "lrate=0.1"], capsys)
    assert code == 2 and "lrate" in err


def test_audit_says_where_its_references_came_from_and_matches_the_evaluation_half(
        tmp_path, capsys, mnist1d, mnist1d_split, mnist1d_original):
    from unlearn.bank import ModelBank

    bank = ModelBank(tmp_path / "bank")
    model_file = models.save_model(mnist1d_original, tmp_path / "original.safetensors")
    forget_csv = data.save_forget_csv(tmp_path / "forget.csv", mnist1d_split.forget)
    args = ["audit", "--model", str(model_file), "--forget", str(forget_csv), "--attacks", "acc,rmia",
            "--n-reference", "2", "--bank", str(bank.root), "--json"]  # no --dataset: read from the file
    code, first_out, first_err = run(args, capsys)
    assert code == 0 and "2 trained now, 0 served from the bank" in first_err
    assert "evaluation half of the test split (500 of 1000" in first_err
    code, second_out, second_err = run(args, capsys)
    assert code == 0 and "0 trained now, 2 served from the bank" in second_err
    evaluation = data.split_holdout(mnist1d.test.y.numpy(), seed=0)[1]
    direct = audit.evaluate(mnist1d_original, mnist1d, mnist1d_split, attacks=("acc", "rmia"), bank=bank,
                            n_reference=2, seed=0, evaluation=evaluation)
    assert json.loads(second_out)["acc"] == direct["acc"]
    assert json.loads(second_out)["rmia"]["auc"] == pytest.approx(direct["rmia"]["auc"])


def test_import_unlearn_reaches_every_layer():
    code = ("import unlearn; m = unlearn.methods.get('ft'); a = unlearn.audit.ATTACKS; "
            "b = unlearn.bank.ModelBank; p = unlearn.attacks; e = unlearn.experiments; print(m.name)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ft", res.stderr
    res = subprocess.run([sys.executable, "-c", "import unlearn; unlearn.nonexistent"], capture_output=True, text=True)
    assert res.returncode == 1 and "no attribute 'nonexistent'" in res.stderr
