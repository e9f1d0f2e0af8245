"""The ledger of deletion requests: an append-only, hash-chained SQLite table.

Every event is one row of one table, `entries`: the base model (`init`), a deletion request
(`request`), one unlearning step that honoured a request (`apply`), a certificate issued
(`certificate`). A row holds its kind, its body as canonical JSON, the hash of the row before it
and its own hash, sha256(previous hash ‖ seq ‖ kind ‖ body). Changing any row, deleting one or
reordering them breaks the chain from that row on, and `Ledger.check` names the first broken row.
SQLite triggers refuse UPDATE and DELETE through SQL as a first guard; the chain is what detects an
edit made around them (dropped triggers, a hex editor). What a chain cannot detect alone is a
truncated tail; for that, compare the head hash with one kept elsewhere: every certificate names
the head it was issued against, and `check(expect_head=...)` looks for it in the chain.

Models are named by their content hash (`content_hash`): sha256 over the weight tensors' names,
dtypes, shapes and bytes, so the metadata of a file (its training record, where it was written)
does not change a model's identity, and a model's lineage is the chain of `apply` rows from the
base model's hash to its own.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnInputError

GENESIS = "0" * 64
KINDS = ("init", "request", "apply", "certificate")

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


def entry_hash(prev_hash: str, seq: int, kind: str, body_text: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{seq}\n{kind}\n{body_text}".encode()).hexdigest()


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of a model's weights: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_content_hash(path) -> str:
    """`content_hash` of the tensors in a safetensors file (a model or a SISA ensemble)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"model file {str(path)!r} does not exist")
    try:
        return content_hash(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise UnlearnInputError(f"{path}: not a readable safetensors model file ({err})") from err


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


class Ledger:
    """The request ledger in the SQLite file `path` (created on first write).

    Reading methods check the whole chain first (`entries`), so nothing is ever decided on an
    edited history: a broken chain raises `UnlearnInputError` naming the first bad row.
    """

    def __init__(self, path):
        self.path = Path(path)

    # -- storage --------------------------------------------------------------------------------
    def _connect(self, create: bool = False) -> sqlite3.Connection:
        if not create and not self.path.is_file():
            raise UnlearnInputError(f"no request ledger at {self.path}; start one with `unlearn requests init`")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=60)
            if create:
                db.executescript(SCHEMA)
            db.execute("SELECT seq, kind, body, prev_hash, hash, created FROM entries LIMIT 1").fetchall()
        except sqlite3.DatabaseError as err:
            raise UnlearnInputError(f"{self.path}: not a request ledger ({err})") from err
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
            if kind not in KINDS or entry_hash(prev_hash, seq, kind, body_text) != stored_hash:
                raise UnlearnInputError(f"{where} ({kind}) was changed after it was written (hash mismatch)")
            try:
                body = json.loads(body_text)
            except json.JSONDecodeError as err:
                raise UnlearnInputError(f"{where}: body is not JSON ({err})") from err
            entries.append(Entry(seq, kind, body, prev_hash, stored_hash, created))
            prev = stored_hash
        if entries and entries[0].kind != "init":
            raise UnlearnInputError(f"{self.path}: the first ledger entry is not the base model (init)")
        return entries

    def entries(self) -> list[Entry]:
        """Every entry, the chain checked; raises `UnlearnInputError` at the first broken row."""
        db = self._connect()
        try:
            return self._rows(db)
        finally:
            db.close()

    def append(self, kind: str, body: dict) -> Entry:
        """Append one entry (after checking the chain so far)."""
        return self.append_many([(kind, body)])[0]

    def append_many(self, items: list[tuple[str, dict]]) -> list[Entry]:
        """Append entries in one transaction: all of them or, on any failure, none."""
        return self._append(lambda existing: items)

    def _append(self, build: Callable[[list[Entry]], list[tuple[str, dict]]]) -> list[Entry]:
        """Append what `build(existing entries)` returns, in one transaction with the chain checked.

        Building inside the transaction makes validate-then-append atomic: two processes adding
        requests at once cannot both take the same id or both pass the overlap check.
        """
        db = self._connect(create=True)
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain has one head
                existing = self._rows(db)
                prev = existing[-1].hash if existing else GENESIS
                seq, written = len(existing), []
                for kind, body in build(existing):
                    if kind not in KINDS:
                        raise ValueError(f"unknown ledger entry kind {kind!r}")
                    if (seq == 0) != (kind == "init"):
                        raise UnlearnInputError(f"{self.path}: a ledger starts with init, once")
                    seq += 1
                    text = canonical(body)
                    digest = entry_hash(prev, seq, kind, text)
                    created = time.time()
                    db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", (seq, kind, text, prev, digest, created))
                    written.append(Entry(seq, kind, json.loads(text), prev, digest, created))
                    prev = digest
            return written
        finally:
            db.close()

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

    def lineage(self, model_hash: str, entries: list[Entry] | None = None) -> list[dict]:
        """The `apply` bodies from the base model to the model with `model_hash`, oldest first.

        A model is its weights, so two steps may produce the same hash (Retrain served twice from
        the bank, or a step that changed nothing); the latest step that produced a hash is its
        record, and the walk back goes to strictly earlier steps, ending at the first step whose
        input is the base model. Raises `UnlearnInputError` if the model does not descend from it.
        """
        entries = self.entries() if entries is None else entries
        base_hash = self.base(entries)["model_hash"]
        steps = [e.body for e in entries if e.kind == "apply"]
        chain, current, before = [], model_hash, len(steps)
        while True:
            producer = next((k for k in range(before - 1, -1, -1) if steps[k]["output_hash"] == current), None)
            if producer is None:
                if current == base_hash:
                    return chain[::-1]
                raise UnlearnInputError(
                    f"model {model_hash[:12]} does not descend from the ledger's base model {base_hash[:12]} "
                    f"(no unlearning step recorded in {self.path} produced it)")
            chain.append(steps[producer])
            current, before = steps[producer]["input_hash"], producer
            if current == base_hash:
                return chain[::-1]

    def honoured(self, model_hash: str, entries: list[Entry] | None = None) -> list[int]:
        """Ids of the requests the model's lineage has honoured, in the order they were applied."""
        ids: list[int] = []
        for step in self.lineage(model_hash, entries):
            ids.extend(i for i in step["requests"] if i not in ids)
        return ids

    def add_request(self, indices, n_train: int, reason: str, requester: str, timestamp: str | None = None) -> Request:
        """Validate and append a request; refuses indices out of range, duplicated or already requested."""
        from unlearn.data import validate_forget

        self.base()  # a readable ledger with a base model, before anything else is said about the request
        indices = validate_forget(indices, n_train, "the request")

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
        """The whole chain checked; with `expect_head` (a head hash kept elsewhere, e.g. from a
        certificate), also that the chain still contains it, which detects a truncated tail."""
        entries = self.entries()
        if expect_head is not None and not any(e.hash.startswith(expect_head.lower()) for e in entries):
            raise UnlearnInputError(f"{self.path}: no entry has hash {expect_head} (the ledger was truncated, or "
                                    "that hash is from another ledger)")
        return entries
