"""The ledger of deletion requests: an append-only, hash-chained SQLite table.

Every event is one row of one table, `entries`: the base model (`init`), a deletion request
(`request`), one unlearning step (`apply`), a certificate issued (`certificate`). A row holds its
kind, its body as canonical JSON, the time it was written, the hash of the row before it and its
own hash, sha256(previous hash ‖ seq ‖ kind ‖ time ‖ body). Changing any row (its time included),
deleting one or reordering them breaks the chain from that row on, and `Ledger.check` names the
first broken row; a row whose hash was recomputed after an edit breaks the next row's link. SQLite
triggers refuse UPDATE and DELETE through SQL as a first guard; the chain is what detects an edit
made around them. What a chain cannot detect alone is a truncated tail; for that, compare the head
hash with one kept elsewhere: every certificate names the head it was issued against, and
`check(expect_head=...)` looks for it in the chain. Every body is also checked against its kind's
fields, so a row crafted with a valid hash but a malformed body is refused, not half-read.

A model's identity (`model_identity`) is sha256 over its weights and the metadata that decides
what it computes: architecture and its arguments, classes, input shape and normalisation for a
classifier; for a SISA ensemble also its seed, shards, slices, aggregation and recipe, which
decide where each training sample sits and so what a deletion retrains. Its training history is
not part of it. Lineage is the ledger's own: each `apply` row names its parent row (the `init`
row or an earlier `apply` row), and a model file written by `apply` names the row that produced
it; that row's recorded identity must be the file's. A step whose output is its input is a
*no-op* and honours nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.files import place

GENESIS = "0" * 64
KINDS = ("init", "request", "apply", "certificate")
CLASSIFIER_FORMAT, SISA_FORMAT = "unlearn.classifier/1", "unlearn.sisa/1"
# A SISA file's metadata that is history (cost records, the ledger row), not behaviour.
SISA_HISTORY = ("deletions", "ledger_entry")
HEX64 = re.compile(r"[0-9a-f]{64}")

# The fields every body of a kind must have, with their types: a row with a valid hash but a
# malformed body (written by hand, or by another program) is refused by name, never half-read.
NUMBER = (int, float)
BODY_FIELDS = {
    "init": {"model_hash": str, "n_train": int, "dataset": str, "model_path": str, "dataset_fingerprint": str,
             "arch": str, "arch_args": dict, "recipe": (str, dict), "seed": int},
    "request": {"id": int, "indices": list, "reason": str, "requester": str, "timestamp": str},
    "apply": {"requests": list, "input_hash": str, "output_hash": str, "parent": int, "noop": bool, "method": str,
              "mode": str, "exact": bool, "seconds": NUMBER, "hyperparameters": dict},
    "certificate": {"request": int, "verdict": str, "kind": str, "model_hash": str, "issued_against": str,
                    "sha256": str, "path": str},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the request ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the request ledger is append-only'); END;
"""


def canonical(body: dict) -> str:
    """The one JSON text of `body` that is hashed: sorted keys, no spaces, no NaN."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)


def entry_hash(prev_hash: str, seq: int, kind: str, created: float, body_text: str) -> str:
    """A row's hash; `created` enters as its shortest round-trip text, which SQLite's REAL keeps exactly."""
    return hashlib.sha256(f"{prev_hash}\n{seq}\n{kind}\n{float(created)!r}\n{body_text}".encode()).hexdigest()


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of a model's weights: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def behaviour(file_format: str, spec: dict) -> dict:
    """The part of a model file's metadata that decides what the model computes (see the module docstring)."""
    from unlearn.models.io import BEHAVIOUR_KEYS

    if file_format == CLASSIFIER_FORMAT:
        return {key: spec.get(key) for key in BEHAVIOUR_KEYS}
    if file_format == SISA_FORMAT:
        return {key: value for key, value in spec.items() if key not in SISA_HISTORY}
    raise UnlearnInputError(f"not an unlearn model or SISA ensemble (format {file_format!r})")


def model_identity(tensors: dict[str, torch.Tensor], file_format: str, spec: dict) -> str:
    """sha256 over the weights and the behaviour-deciding metadata: a model's name in the ledger."""
    try:
        meta = canonical(behaviour(file_format, spec))
    except (TypeError, ValueError) as err:
        raise UnlearnInputError(f"model metadata cannot be read as a model's description ({err})") from err
    return hashlib.sha256(f"{file_format}\n{meta}\n{content_hash(tensors)}".encode()).hexdigest()


def classifier_identity(model) -> str:
    """`model_identity` of an in-memory `Classifier`, as `file_identity` will read it once saved."""
    return model_identity(model.state_dict(), CLASSIFIER_FORMAT, json.loads(json.dumps(model.spec)))


def sisa_identity(sisa) -> str:
    """`model_identity` of an in-memory SISA ensemble saved with its checkpoints."""
    return model_identity(sisa.tensors(checkpoints=True), SISA_FORMAT,
                          json.loads(json.dumps(sisa.file_spec(checkpoints=True))))


def read_model_file(path) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """(format, spec, tensors) of an unlearn model or SISA ensemble file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"model file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        spec = json.loads(meta.get("spec", "null"))
    except (SafetensorError, OSError, ValueError) as err:
        raise UnlearnInputError(f"{path}: not a readable safetensors model file ({err})") from err
    if not isinstance(spec, dict) or meta.get("format") not in (CLASSIFIER_FORMAT, SISA_FORMAT):
        raise UnlearnInputError(f"{path}: safetensors file without unlearn model metadata")
    return meta["format"], spec, tensors


def file_identity(path) -> tuple[str, dict | None]:
    """A model file's identity, and the ledger row it says produced it (None for a file no `apply` wrote)."""
    file_format, spec, tensors = read_model_file(path)
    recorded = spec.get("ledger_entry") if file_format == SISA_FORMAT else (spec.get("training") or {}).get(
        "ledger_entry")
    try:
        return model_identity(tensors, file_format, spec), recorded if isinstance(recorded, dict) else None
    except UnlearnInputError as err:
        raise UnlearnInputError(f"{path}: {err}") from err


def file_content_hash(path) -> str:
    """The identity (`model_identity`) of the model in a safetensors file (a model or a SISA ensemble)."""
    return file_identity(path)[0]


def check_timestamp(text: str) -> str:
    """`text` if it is an ISO 8601 date or date and time (2026-01-31, 2026-01-31T12:00:00Z, ...)."""
    try:
        datetime.fromisoformat(text)
    except (TypeError, ValueError) as err:
        raise UnlearnInputError(f"--timestamp {text!r} is not an ISO 8601 date or time "
                                "(e.g. 2026-01-31 or 2026-01-31T12:00:00Z)") from err
    return text


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def check_body(kind: str, body, where: str) -> None:
    """Refuse a body that lacks a field of its kind or holds one of the wrong type."""
    if not isinstance(body, dict):
        raise UnlearnInputError(f"{where}: malformed {kind} entry (its body is not an object)")
    for key, kind_of in BODY_FIELDS[kind].items():
        if key not in body or not _is(body[key], kind_of):
            raise UnlearnInputError(f"{where}: malformed {kind} entry (field {key!r} missing or of the wrong type)")
    for key in ("indices", "requests"):
        if key in body and not all(_is(i, int) and i >= 0 for i in body[key]):
            raise UnlearnInputError(f"{where}: malformed {kind} entry ({key!r} must hold integers >= 0)")
    if isinstance(body.get("seconds"), float) and not math.isfinite(body["seconds"]):
        raise UnlearnInputError(f"{where}: malformed {kind} entry (seconds is not finite)")


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    body: dict
    prev_hash: str
    hash: str
    created: float


@dataclass(frozen=True)
class Request:
    """A deletion request: its id (1, 2, ...), the training indices, and who asked, why, when."""

    id: int
    indices: np.ndarray
    reason: str
    requester: str
    timestamp: str
    hash: str  # the ledger row's hash: what certificates cite


def output_of(entry: Entry) -> str:
    """The identity of the model a row stands for: the base for `init`, the output for `apply`."""
    return entry.body["model_hash"] if entry.kind == "init" else entry.body["output_hash"]


# A staged write: (temporary file, final path, may it replace an existing file).
Move = tuple[Path, Path, bool]


class Ledger:
    """The request ledger in the SQLite file `path` (created on first write).

    Reading methods check the whole chain first (`entries`), so nothing is ever decided on an
    edited history: a broken chain or a malformed row raises `UnlearnInputError` naming it.
    """

    def __init__(self, path):
        self.path = Path(path)

    # -- storage --------------------------------------------------------------------------------
    def _connect(self, create: bool = False) -> sqlite3.Connection:
        if not create and not self.path.is_file():
            raise UnlearnInputError(f"no request ledger at {self.path}; start one with `unlearn requests init`")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60)
            if create:
                db.executescript(SCHEMA)
            db.execute("SELECT seq, kind, body, prev_hash, hash, created FROM entries LIMIT 1").fetchall()
        except sqlite3.OperationalError as err:
            raise UnlearnInputError(f"{self.path}: cannot open the request ledger for writing ({err})") from err
        except sqlite3.DatabaseError as err:
            raise UnlearnInputError(f"{self.path}: not a request ledger ({err})") from err
        except OSError as err:
            raise UnlearnInputError(f"{self.path}: cannot create the request ledger ({err})") from err
        return db

    def _rows(self, db: sqlite3.Connection) -> list[Entry]:
        try:
            rows = db.execute("SELECT seq, kind, body, prev_hash, hash, created FROM entries ORDER BY seq").fetchall()
        except sqlite3.DatabaseError as err:
            raise UnlearnInputError(f"{self.path}: not a readable request ledger ({err})") from err
        entries, prev = [], GENESIS
        for position, (seq, kind, body_text, prev_hash, stored_hash, created) in enumerate(rows, start=1):
            where = f"{self.path}: ledger entry {seq}"
            if seq != position:
                raise UnlearnInputError(f"{where}: expected entry {position} (a row was removed or renumbered)")
            if prev_hash != prev:
                raise UnlearnInputError(f"{where}: does not follow entry {seq - 1} (the chain is broken)")
            if (kind not in KINDS or not isinstance(body_text, str) or not isinstance(created, float)
                    or entry_hash(prev_hash, seq, kind, created, body_text) != stored_hash):
                raise UnlearnInputError(f"{where} ({kind}) was changed after it was written (hash mismatch)")
            try:
                body = json.loads(body_text)
            except json.JSONDecodeError as err:
                raise UnlearnInputError(f"{where}: body is not JSON ({err})") from err
            entry = Entry(seq, kind, body, prev_hash, stored_hash, created)
            self._check_meaning(entry, entries, where)
            entries.append(entry)
            prev = stored_hash
        return entries

    @staticmethod
    def _check_meaning(entry: Entry, earlier: list[Entry], where: str) -> None:
        """A row's body fits its kind and the rows before it (ids in order, parents that exist)."""
        if (entry.seq == 1) != (entry.kind == "init"):
            raise UnlearnInputError(f"{where}: a ledger starts with the base model (init), once")
        check_body(entry.kind, entry.body, where)
        body = entry.body
        if entry.kind == "request" and body["id"] != 1 + sum(e.kind == "request" for e in earlier):
            raise UnlearnInputError(f"{where}: malformed request entry (request ids must run 1, 2, ...)")
        if entry.kind == "apply":
            parent = body["parent"]
            if not 1 <= parent < entry.seq or earlier[parent - 1].kind not in ("init", "apply"):
                raise UnlearnInputError(f"{where}: malformed apply entry (parent {parent} is not an earlier model)")
            if output_of(earlier[parent - 1]) != body["input_hash"]:
                raise UnlearnInputError(f"{where}: its input model is not the output of its parent entry {parent}")
            known = sum(e.kind == "request" for e in earlier)
            if not body["requests"] or not all(1 <= i <= known for i in body["requests"]):
                raise UnlearnInputError(f"{where}: malformed apply entry (names a request not recorded before it)")

    def entries(self) -> list[Entry]:
        """Every entry, the chain checked; raises `UnlearnInputError` at the first broken row."""
        db = self._connect()
        try:
            return self._rows(db)
        finally:
            db.close()

    def check_writable(self) -> None:
        """Refuse, before any work, a ledger this process cannot write (read-only file or folder)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS entries_write_probe (x)")  # needs the journal: the folder too
            db.rollback()
        except sqlite3.OperationalError as err:
            raise UnlearnInputError(f"{self.path}: the request ledger is not writable ({err})") from err
        finally:
            db.close()

    def append(self, kind: str, body: dict) -> Entry:
        """Append one entry (after checking the chain so far)."""
        return self.append_many([(kind, body)])[0]

    def append_many(self, items: list[tuple[str, dict]]) -> list[Entry]:
        """Append entries in one transaction: all of them or, on any failure, none."""
        return self._append(lambda existing: items)

    def _append(self, build: Callable[[list[Entry]], list[tuple[str, dict]]],
                stage: Callable[[list[Entry]], list[Move]] | None = None) -> list[Entry]:
        """Append what `build(existing entries)` returns, in one transaction with the chain checked.

        Building inside the transaction makes validate-then-append atomic: two processes adding
        requests at once cannot both take the same id or both pass the overlap check. `stage`
        (given the rows about to commit) writes files to temporary paths and returns the moves;
        they are placed only after the rows commit, and removed if anything fails before.
        """
        db = self._connect(create=True)
        moves: list[Move] = []
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain has one head
                existing = self._rows(db)
                prev = existing[-1].hash if existing else GENESIS
                seq, written = len(existing), []
                for kind, body in build(existing):
                    if kind not in KINDS:
                        raise ValueError(f"unknown ledger entry kind {kind!r}")
                    seq += 1
                    text = canonical(body)
                    created = time.time()
                    entry = Entry(seq, kind, json.loads(text), prev, entry_hash(prev, seq, kind, created, text), created)
                    self._check_meaning(entry, existing + written, f"{self.path}: new ledger entry {seq}")
                    db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                               (seq, kind, text, prev, entry.hash, created))
                    written.append(entry)
                    prev = entry.hash
                if stage is not None:
                    moves = stage(written)
                    for _, final, replace in moves:
                        if final.exists() and not replace:
                            raise UnlearnInputError(f"{final} already exists; it is never overwritten")
        except sqlite3.OperationalError as err:
            _discard(moves)
            raise UnlearnInputError(f"{self.path}: cannot write the request ledger ({err})") from err
        except BaseException:
            _discard(moves)
            raise
        finally:
            db.close()
        try:
            for tmp, final, replace in moves:
                place(tmp, final, replace)
        except OSError as err:
            _discard(moves)
            raise UnlearnInputError(f"ledger entries {written[0].seq}-{written[-1].seq} were recorded, but their "
                                    f"file could not be placed ({err})") from err
        return written

    # -- what the entries mean ------------------------------------------------------------------
    def base(self, entries: list[Entry] | None = None) -> dict:
        entries = self.entries() if entries is None else entries
        if not entries:
            raise UnlearnInputError(f"{self.path}: the ledger is empty; run `unlearn requests init` first")
        return entries[0].body

    def head(self, entries: list[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        return entries[-1].hash if entries else GENESIS

    def requests(self, entries: list[Entry] | None = None) -> list[Request]:
        entries = self.entries() if entries is None else entries
        return [Request(e.body["id"], np.asarray(e.body["indices"], dtype=np.int64), e.body["reason"],
                        e.body["requester"], e.body["timestamp"], e.hash) for e in entries if e.kind == "request"]

    def request(self, request_id: int, entries: list[Entry] | None = None) -> Request:
        found = [r for r in self.requests(entries) if r.id == request_id]
        if not found:
            known = [r.id for r in self.requests(entries)]
            raise UnlearnInputError(f"no request {request_id} in the ledger {self.path} "
                                    f"(requests: {', '.join(map(str, known)) or 'none'})")
        return found[0]

    def origin(self, model_path, entries: list[Entry] | None = None) -> tuple[Entry, str]:
        """The row that stands for the model in `model_path` (init, or the apply row that wrote it), and
        the model's identity. Refuses a model the ledger did not produce, or one changed since."""
        entries = self.entries() if entries is None else entries
        base = self.base(entries)
        identity, recorded = file_identity(model_path)
        if recorded is not None:
            seq = recorded.get("seq")
            row = entries[seq - 1] if _is(seq, int) and 1 <= seq <= len(entries) else None
            if row is not None and row.kind == "apply" and row.hash == recorded.get("hash"):
                if row.body["output_hash"] != identity:
                    raise UnlearnInputError(
                        f"{model_path}: its weights or metadata differ from the model ledger entry {seq} recorded "
                        f"(identity {identity[:12]}, recorded {row.body['output_hash'][:12]}); it was changed "
                        "after it was written")
                return row, identity
        if identity == base["model_hash"]:
            return entries[0], identity
        raise UnlearnInputError(
            f"model {identity[:12]} ({model_path}) does not descend from the ledger's base model "
            f"{base['model_hash'][:12]} (no unlearning step recorded in {self.path} wrote it, or its weights or "
            "metadata were changed since)")

    def lineage(self, row: Entry, entries: list[Entry] | None = None) -> list[dict]:
        """The `apply` bodies from the base model to the model of `row`, oldest first (parents followed)."""
        entries = self.entries() if entries is None else entries
        chain = []
        while row.kind == "apply":
            chain.append(row.body)
            row = entries[row.body["parent"] - 1]
        return chain[::-1]

    def honoured(self, row: Entry, entries: list[Entry] | None = None) -> list[int]:
        """Ids of the requests the lineage of `row` has honoured, in order; a no-op step honours nothing."""
        ids: list[int] = []
        for step in self.lineage(row, entries):
            if not step["noop"]:
                ids.extend(i for i in step["requests"] if i not in ids)
        return ids

    def add_request(self, indices, n_train: int, reason: str, requester: str, timestamp: str | None = None) -> Request:
        """Validate and append a request; refuses indices out of range, duplicated or already requested."""
        from unlearn.data import validate_forget

        self.base()  # a readable ledger with a base model, before anything else is said about the request
        indices = validate_forget(indices, n_train, "the request")
        if timestamp is not None:
            check_timestamp(timestamp)

        def build(entries: list[Entry]) -> list[tuple[str, dict]]:
            base = self.base(entries)
            if n_train != base["n_train"]:
                raise UnlearnInputError(f"the dataset has {n_train} training samples, the ledger's base "
                                        f"{base['n_train']}")
            earlier = self.requests(entries)
            for request in earlier:
                again = np.intersect1d(indices, request.indices)
                if again.size:
                    raise UnlearnInputError(f"the request repeats {again.size} indices of request {request.id}, "
                                            f"e.g. {int(again[0])}")
            return [("request", {"id": len(earlier) + 1, "indices": indices.tolist(), "reason": reason,
                                 "requester": requester,
                                 "timestamp": timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})]

        [entry] = self._append(build)
        return self.request(entry.body["id"], [entry])

    def check(self, expect_head: str | None = None) -> list[Entry]:
        """The whole chain checked; with `expect_head` (a full head hash kept elsewhere, e.g. from a
        certificate), also that the chain still contains it, which detects a truncated tail."""
        if expect_head is not None and not HEX64.fullmatch(expect_head.lower()):
            raise UnlearnInputError(f"--expect-head must be a full entry hash (64 hex digits), got {expect_head!r}")
        entries = self.entries()
        if expect_head is not None and not any(e.hash == expect_head.lower() for e in entries):
            raise UnlearnInputError(f"{self.path}: no entry has hash {expect_head} (the ledger was truncated, or "
                                    "that hash is from another ledger)")
        return entries


def _discard(moves: list[Move]) -> None:
    for tmp, _, _ in moves:
        if os.path.exists(tmp):
            os.unlink(tmp)
