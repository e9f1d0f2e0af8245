"""The request ledger alone: the hash chain, what it detects and what it refuses (no models: fast).

Every edit an intruder can make to the SQLite file (a changed cell, a removed row, a row whose own
hash was recomputed, a kind swapped for another valid one, an edited time, a crafted body) must be
named by `check`; and the inputs that reach the ledger (timestamps, --expect-head, --indices) are
refused when malformed. These tests are what the mutation check of `requests/ledger.py` runs.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn.cli import main
from unlearn.errors import UnlearnInputError
from unlearn.requests import Ledger


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err



INIT_BODY = {"model_hash": "ab" * 32, "n_train": 100, "dataset": "none", "model_path": "/nowhere",
             "dataset_fingerprint": "none", "arch": "mlp", "arch_args": {}, "recipe": "none", "seed": 0}


def small_ledger(path) -> Ledger:
    ledger = Ledger(path)
    ledger.append("init", INIT_BODY)
    for k in range(3):
        ledger.add_request(np.arange(10 * k, 10 * k + 5), 100, f"reason {k}", f"requester {k}")
    return ledger


def edit(path, sql: str, *params) -> None:
    """Edit the SQLite file directly, around the append-only triggers, as an intruder would."""
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TRIGGER IF EXISTS entries_no_update")
        db.execute("DROP TRIGGER IF EXISTS entries_no_delete")
        db.execute(sql, params)
    db.close()


def test_ledger_is_append_only_through_sql(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    db = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE entries SET body = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM entries WHERE seq = 4")
    db.close()
    assert len(ledger.check()) == 4


@settings(max_examples=25, deadline=None)
@given(seq=st.integers(1, 4), column=st.sampled_from(["kind", "body", "prev_hash", "hash"]),
       position=st.integers(0, 10_000))
def test_any_edit_of_any_row_breaks_the_chain(tmp_path_factory, seq, column, position):
    path = tmp_path_factory.mktemp("chain") / "l.sqlite"
    ledger = small_ledger(path)
    value = sqlite3.connect(path).execute(f"SELECT {column} FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
    i = position % len(value)
    changed = value[:i] + ("x" if value[i] != "x" else "y") + value[i + 1:]
    edit(path, f"UPDATE entries SET {column} = ? WHERE seq = ?", changed, seq)
    with pytest.raises(UnlearnInputError, match=f"entry {seq}"):
        ledger.check()


def test_removed_rows_are_detected_and_a_truncated_tail_with_a_kept_head(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    head = ledger.head()
    shutil.copy(ledger.path, tmp_path / "m.sqlite")
    edit(ledger.path, "DELETE FROM entries WHERE seq = 2")
    with pytest.raises(UnlearnInputError, match="entry 3"):
        ledger.check()
    truncated = Ledger(tmp_path / "m.sqlite")
    edit(truncated.path, "DELETE FROM entries WHERE seq = 4")
    truncated.check()  # a chain alone cannot see a missing tail ...
    with pytest.raises(UnlearnInputError, match="truncated"):
        truncated.check(expect_head=head)  # ... a head kept elsewhere can


def test_requests_are_validated_against_the_training_set_and_each_other(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    before = ledger.path.read_bytes()
    for indices, message in [([5, 100], "outside the training set"), ([50, 50], "duplicate"),
                             ([], "empty"), ([60, 12], "repeats 1 indices of request 2")]:
        with pytest.raises(UnlearnInputError, match=message):
            ledger.add_request(indices, 100, "r", "someone")
    assert ledger.path.read_bytes() == before



def chain_rows(path) -> list[tuple]:
    return sqlite3.connect(path).execute("SELECT seq, kind, body, prev_hash, hash, created FROM entries "
                                         "ORDER BY seq").fetchall()


def forge(path, seq: int, **changes) -> None:
    """Rewrite row `seq` with `changes` and recompute its own hash, as a careful intruder would."""
    from unlearn.requests.ledger import entry_hash

    row = dict(zip(("seq", "kind", "body", "prev_hash", "hash", "created"), chain_rows(path)[seq - 1]))
    row.update(changes)
    row["hash"] = entry_hash(row["prev_hash"], seq, row["kind"], row["created"], row["body"])
    edit(path, "UPDATE entries SET kind = ?, body = ?, hash = ?, created = ? WHERE seq = ?",
         row["kind"], row["body"], row["hash"], row["created"], seq)


def test_a_forged_row_with_its_own_hash_recomputed_breaks_the_next_row(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    body = json.loads(chain_rows(ledger.path)[2][2])
    forge(ledger.path, 3, body=json.dumps({**body, "requester": "mallory"}, sort_keys=True, separators=(",", ":")))
    with pytest.raises(UnlearnInputError, match="entry 4: does not follow entry 3"):
        ledger.check()


def test_a_row_whose_kind_becomes_another_valid_kind_is_caught(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    edit(ledger.path, "UPDATE entries SET kind = 'certificate' WHERE seq = 4")  # hash left as it was
    with pytest.raises(UnlearnInputError, match=r"entry 4 \(certificate\) was changed"):
        ledger.check()
    other = small_ledger(tmp_path / "m.sqlite")
    forge(other.path, 4, kind="certificate")  # the last row, its hash recomputed: no next row to break
    with pytest.raises(UnlearnInputError, match="entry 4: malformed certificate entry"):
        other.check()


def test_the_time_of_a_row_is_part_of_its_hash(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    created = chain_rows(ledger.path)[1][5]
    edit(ledger.path, "UPDATE entries SET created = ? WHERE seq = 2", created - 86400.0)
    with pytest.raises(UnlearnInputError, match=r"entry 2 \(request\) was changed"):
        ledger.check()


def test_a_malformed_entry_with_a_valid_hash_is_refused_by_name(tmp_path, capsys):
    ledger = small_ledger(tmp_path / "l.sqlite")
    forge(ledger.path, 4, body=json.dumps({"id": 3, "reason": "r", "requester": "x", "timestamp": "2026-01-01"}))
    code, _, err = run(["requests", "list", "--ledger", str(ledger.path)], capsys)
    assert code == 2 and "entry 4: malformed request entry (field 'indices'" in err and len(err.splitlines()) == 1
    for bad in ({"id": 3, "indices": [1, "2"], "reason": "r", "requester": "x", "timestamp": "t"},
                {"id": 7, "indices": [90], "reason": "r", "requester": "x", "timestamp": "t"}):
        forge(ledger.path, 4, body=json.dumps(bad))
        with pytest.raises(UnlearnInputError, match="entry 4: malformed request entry"):
            ledger.check()


def test_expect_head_needs_the_full_head_hash(tmp_path, capsys):
    ledger = small_ledger(tmp_path / "l.sqlite")
    head = ledger.head()
    ledger.check(expect_head=head)
    ledger.check(expect_head=head.upper())
    for prefix in ("", head[:1], head[:12], head[:-1], head + "0"):
        code, _, err = run(["requests", "check", "--ledger", str(ledger.path), "--expect-head", prefix], capsys)
        assert code == 2 and "full entry hash" in err, prefix


def test_timestamps_must_be_iso_8601(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    for text in ("yesterday", "2026-13-01", "31/01/2026", ""):
        with pytest.raises(UnlearnInputError, match="ISO 8601"):
            ledger.add_request([50], 100, "r", "x", timestamp=text)
    assert ledger.add_request([50], 100, "r", "x", timestamp="2026-01-31T12:00:00Z").timestamp == "2026-01-31T12:00:00Z"
    assert ledger.add_request([51], 100, "r", "x", timestamp="2026-01-31").id == 5


def test_index_ranges_are_checked_before_they_are_expanded():
    from unlearn.cli.requests import parse_indices

    with pytest.raises(UnlearnInputError, match="range 9-3"):
        parse_indices(["9-3"], 10)
    with pytest.raises(UnlearnInputError, match="range 0-10"):
        parse_indices(["0-10"], 10)
    with pytest.raises(UnlearnInputError, match="range 0-20000000 is not within the training set"):
        parse_indices(["0-20000000"], 4000)  # refused at once, not after 20 million integers
    assert parse_indices(["0-9"], 10) == list(range(10))
    assert parse_indices(["1,2", "5-6", " 8 "], 10) == [1, 2, 5, 6, 8]  # repeated --indices are joined
    with pytest.raises(UnlearnInputError, match="'x' is not an index"):
        parse_indices(["1,x"], 10)


def test_the_hashed_text_is_canonical_and_refuses_nan():
    from unlearn.requests.ledger import canonical

    assert canonical({"b": 1, "a": [2, 3]}) == canonical({"a": [2, 3], "b": 1}) == '{"a":[2,3],"b":1}'
    with pytest.raises(ValueError):
        canonical({"a": float("nan")})


def step(parent: int, input_hash: str, output_hash: str, requests=(1,), noop=False, **changes) -> dict:
    body = {"requests": list(requests), "input_hash": input_hash, "output_hash": output_hash, "parent": parent,
            "noop": noop, "method": "ft", "mode": "successive", "exact": False, "seconds": 1.5, "hyperparameters": {}}
    return {**body, **changes}


def test_lineage_follows_parent_rows_and_a_no_op_honours_nothing(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    base, a, b = "ab" * 32, "cd" * 32, "ef" * 32
    ledger.append("apply", step(1, base, a, [1]))                # entry 5: request 1 on the base
    ledger.append("apply", step(5, a, a, [2], noop=True))        # entry 6: a no-op on request 2
    ledger.append("apply", step(6, a, b, [3]))                   # entry 7: request 3
    ledger.append("apply", step(1, base, b, [1, 2, 3]))          # entry 8: same output, another branch
    entries = ledger.entries()
    assert [s["requests"] for s in ledger.lineage(entries[6], entries)] == [[1], [2], [3]]
    assert ledger.honoured(entries[6], entries) == [1, 3]
    assert ledger.honoured(entries[7], entries) == [1, 2, 3]  # the row decides, not the output hash
    assert ledger.honoured(entries[0], entries) == []
    for bad, message in [(step(9, a, b), "parent 9 is not an earlier model"),
                         (step(2, a, b), "parent 2 is not an earlier model"),  # a request row
                         (step(5, base, b), "not the output of its parent entry 5"),
                         (step(5, a, b, [4]), "names a request not recorded"),
                         (step(5, a, b, []), "names a request not recorded"),
                         (step(5, a, b, ["1"]), "'requests' must hold integers"),
                         (step(5, a, b, noop=1), "'noop' missing or of the wrong type"),
                         (step(5, a, b, seconds=True), "'seconds' missing or of the wrong type"),
                         (step(5, a, b, seconds=float("inf")), "not JSON compliant")]:
        with pytest.raises((UnlearnInputError, ValueError), match=message):
            ledger.append("apply", bad)
    assert len(ledger.entries()) == 8  # nothing was appended
    ledger.append("apply", step(5, a, b, seconds=2))  # an integer number of seconds is a number


def test_booleans_are_not_integers_in_a_body(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    forge(ledger.path, 4, body=json.dumps({"id": True, "indices": [90], "reason": "r", "requester": "x",
                                           "timestamp": "t"}))
    with pytest.raises(UnlearnInputError, match="field 'id' missing or of the wrong type"):
        ledger.check()


def test_a_body_that_is_not_an_object_or_holds_an_infinite_time_is_refused(tmp_path):
    ledger = small_ledger(tmp_path / "l.sqlite")
    forge(ledger.path, 4, body="[1, 2]")
    with pytest.raises(UnlearnInputError, match="entry 4: malformed request entry .its body is not an object"):
        ledger.check()
    other = small_ledger(tmp_path / "m.sqlite")
    other.append("apply", step(1, "ab" * 32, "cd" * 32))
    body = json.loads(chain_rows(other.path)[4][2])
    forge(other.path, 5, body=json.dumps(body).replace('"seconds": 1.5', '"seconds": Infinity'))
    with pytest.raises(UnlearnInputError, match="entry 5: malformed apply entry .seconds is not finite"):
        other.check()


def test_a_missing_ledger_is_named_and_not_created(tmp_path):
    with pytest.raises(UnlearnInputError, match="no request ledger at .*missing.sqlite"):
        Ledger(tmp_path / "missing.sqlite").check()
    assert not (tmp_path / "missing.sqlite").exists()
