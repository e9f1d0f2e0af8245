"""Honour pending deletion requests on a model, and record what was done in the ledger.

`apply_requests` takes a model that descends from the ledger's base model (its content hash is
the base's, or the output of a recorded unlearning step), finds the requests its lineage has not
honoured yet, and unlearns them with a registered method:

- successively (default): one request at a time, each from the model the previous one left, the
  setting of AMUN's Sec. 5.3. With `amun` (adaptive, AMUN-A) the adversarial examples of request
  k are searched on the current model; with `adaptive=False` (plain AMUN) on the base model θ_o,
  which is read from the path recorded at `init` and checked against its hash;
- all at once (`all_at_once=True`): one call on the union of the pending requests.

D_R is the training set minus every request the model has honoured and every request pending now.
That is a superset of "minus every earlier request" (AMUN's `unlearn_successively`), on purpose:
once a deletion has been asked for, its samples are not trained on again, even while earlier
requests are being served. When requests are applied as they arrive (add, apply, add, apply, ...),
the two coincide.

With `sisa` the path is exact: from a plain model (the base), a SISA ensemble with the model's
architecture, recipe and seed is trained on the training set minus what the model has already
honoured; from an ensemble written by an earlier `apply`, its slice checkpoints are read back.
Each request then retrains only the shards that held its samples, from the checkpoint before the
earliest slice that did (`unlearn.methods.sisa`). Ensembles are written with their checkpoints.

Nothing is written unless everything succeeded, and nothing is overwritten unless asked: an
existing `out` is refused (`force=True` replaces it, and the row says so); the ledger's
writability and `out`'s folder are checked before any work; the model is written to a temporary
file beside `out`, one `apply` row per unlearning step (parent row, input → output identity,
method, hyperparameters, seconds) is appended in one transaction, and only then is the file moved
to `out`. The file names its row, which is how a later command finds the model's lineage. A step
whose output is its input (a method that changed nothing) is recorded as a no-op: it honours no
request.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import data, methods, models
from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.files import staged_path
from unlearn.requests.ledger import (
    SISA_FORMAT,
    Entry,
    Ledger,
    Request,
    classifier_identity,
    file_content_hash,
    file_identity,
    sisa_identity,
)


def jsonable(value):
    """A JSON-safe copy of method statistics and hyperparameters (NaN and infinities become None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def file_format(path) -> str:
    """The `format` metadata of a safetensors file ("unlearn.classifier/1", "unlearn.sisa/1", ...)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format", "")
    except (SafetensorError, OSError, ValueError) as err:
        raise UnlearnInputError(f"{path}: not a readable safetensors model file ({err})") from err


def load_dataset(base: dict, data_root=None) -> data.Dataset:
    """The ledger's dataset, refused if its content is not the one the base model was trained on."""
    ds = data.load(base["dataset"], root=data_root)
    if ds.fingerprint != base["dataset_fingerprint"]:
        raise UnlearnInputError(f"dataset {base['dataset']} has changed since the ledger was started "
                                f"(fingerprint {ds.fingerprint}, ledger {base['dataset_fingerprint']})")
    return ds


def load_base_model(base: dict, ds, device="cpu"):
    """The base model θ_o from the path recorded at `init`, refused if its weights changed."""
    path = Path(base["model_path"])
    if file_content_hash(path) != base["model_hash"]:
        raise UnlearnInputError(f"the base model file {path} no longer holds the ledger's base model "
                                f"{base['model_hash'][:12]}")
    return models.load_model(path, ds, device)


def deleted_indices(requests: list[Request], n_train: int) -> np.ndarray:
    deleted = np.zeros(n_train, dtype=bool)
    for request in requests:
        deleted[request.indices] = True
    return deleted


def check_out(out: Path, force: bool, model_path, base: dict, ledger: Ledger) -> str | None:
    """Refuse an `out` that is an input, or exists without `force`, or cannot be written; before any work.

    Returns the identity of the file `out` will replace (with `force`), or None."""
    out = Path(out)
    if out.resolve() in (Path(model_path).resolve(), Path(base["model_path"]), ledger.path.resolve()):
        raise UnlearnInputError(f"--out {out} would overwrite the input model, the base model or the ledger")
    replaced = None
    if out.exists():
        if not force:
            raise UnlearnInputError(f"--out {out} already exists; give another path, or --force to replace it "
                                    "(the ledger records the replacement)")
        try:
            replaced = file_identity(out)[0]
        except UnlearnInputError:
            replaced = "not a model file"
    check_writable_folder(out.parent, f"--out {out}")
    return replaced


def check_writable_folder(folder, what: str) -> None:
    """Refuse, before any work, a folder (or its nearest existing parent) this process cannot write in."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UnlearnInputError(f"{what}: the folder {folder} is not writable")


def record_steps(ledger: Ledger, origin: Entry, steps: list[dict], out, force: bool, replaced: str | None,
                 write) -> list[dict]:
    """Append the steps (each naming its parent row), write the model staged, place it after the commit.

    `write(path, last_row)` writes the model to the staged `path`, naming `last_row` in its metadata."""
    out = Path(out)

    def build(existing: list[Entry]) -> list[tuple[str, dict]]:
        first = len(existing) + 1
        rows = [{**step, "parent": origin.seq if k == 0 else first + k - 1} for k, step in enumerate(steps)]
        rows[-1].update({"out": str(out.resolve()), "forced": bool(force), "replaced": replaced})
        return [("apply", row) for row in rows]

    def stage(written: list[Entry]):
        try:
            tmp = staged_path(out, suffix=".safetensors")
        except OSError as err:
            raise UnlearnInputError(f"--out {out}: cannot write there ({err})") from err
        try:
            write(tmp, written[-1])
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise UnlearnInputError(f"--out {out}: cannot write the model ({err})") from err
            raise
        return [(tmp, out, force)]

    return [e.body for e in ledger._append(build, stage)]


def ledger_entry(ledger: Ledger, row: Entry) -> dict:
    """What a model file records of the row that produced it."""
    return {"seq": row.seq, "hash": row.hash, "ledger": str(ledger.path.resolve())}


def apply_requests(ledger: Ledger, model_path, method: str, out, *, hyperparameters: dict | None = None,
                   all_at_once: bool = False, with_retain: bool = True, seed: int = 0, device="cpu", bank=None,
                   data_root=None, force: bool = False) -> list[dict]:
    """Honour every request `model_path` has not honoured yet; write the result to `out`.

    Returns the ledger bodies of the unlearning steps (one per request, or one for all at once).
    Raises `UnlearnInputError`, with the ledger and every model file unchanged, for a corrupt
    ledger, a model not descending from the base (or changed since it was written), no pending
    request, an existing `out` without `force`, a read-only ledger, or an unknown method.
    """
    from unlearn.bank import ModelBank

    entries = ledger.entries()
    base = ledger.base(entries)
    chosen = methods.get(method, **(hyperparameters or {}))
    origin, input_hash = ledger.origin(model_path, entries)
    honoured = set(ledger.honoured(origin, entries))
    requests = ledger.requests(entries)
    pending = [r for r in requests if r.id not in honoured]
    if not pending:
        raise UnlearnInputError(f"model {input_hash[:12]} has honoured every request in the ledger; nothing to apply")
    replaced = check_out(Path(out), force, model_path, base, ledger)
    ledger.check_writable()
    ds = load_dataset(base, data_root)
    bank = bank if bank is not None else ModelBank()
    # Retrain's output depends on D_R alone, which already lacks every pending request: one retraining
    # honours them all, and successive steps would hand back that same model (recorded as no-ops).
    all_at_once = all_at_once or method == "retrain"
    groups = [pending] if all_at_once else [[r] for r in pending]
    # Every request known now (honoured or pending) is out of D_R: see the module docstring.
    retain_indices = np.flatnonzero(~deleted_indices(requests, len(ds.train))).astype(np.int64)
    mode = "all-at-once" if all_at_once else "successive"
    if method == "sisa":
        return _apply_sisa(ledger, chosen, model_path, origin, input_hash, requests, honoured, groups, out, ds, mode,
                           device, base, force, replaced)

    if file_format(model_path) == SISA_FORMAT:
        raise UnlearnInputError(f"{model_path} is a SISA ensemble; it can only be unlearned with --method sisa")
    current = models.load_model(model_path, ds, device)
    original = None
    if getattr(chosen, "adaptive", True) is False:  # plain AMUN: adversarial examples of θ_o
        original = current if input_hash == base["model_hash"] else load_base_model(base, ds, device)
    retain = ds.train.subset(retain_indices) if with_retain else None
    validation, _evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    steps, step_input = [], input_hash
    for k, group in enumerate(groups):
        forget_indices = np.sort(np.concatenate([r.indices for r in group]))
        start = time.perf_counter()
        try:
            current = chosen.unlearn(current, ds.train.subset(forget_indices), retain, seed=seed + k, device=device,
                                     dataset=ds, split=data.ForgetSplit(forget_indices, retain_indices),
                                     retain_indices=retain_indices, bank=bank, original=original,
                                     holdout=ds.test.subset(validation))
        except DivergenceError as err:  # a learning rate too large for this model: the user's to change
            raise UnlearnInputError(str(err)) from err
        seconds = time.perf_counter() - start
        output_hash = classifier_identity(current)
        steps.append(jsonable({
            "requests": [r.id for r in group], "request_hashes": [r.hash for r in group],
            "input_hash": step_input, "output_hash": output_hash, "noop": output_hash == step_input,
            "method": method, "hyperparameters": chosen.get_params(), "mode": mode, "exact": False,
            "retain_given": with_retain, "n_forget": int(forget_indices.size), "n_retain": int(retain_indices.size),
            "seed": seed + k, "seconds": seconds, "stats": getattr(chosen, "stats_", None)}))
        step_input = output_hash

    def write(path, row):
        record = {"ledger": str(ledger.path), "base_hash": base["model_hash"], "steps": steps}
        models.save_model(current, path, atomic=False,
                          extra={"requests": json.dumps(record), "ledger_entry": ledger_entry(ledger, row)})

    return record_steps(ledger, origin, steps, out, force, replaced, write)


def _apply_sisa(ledger, chosen, model_path, origin, input_hash, requests, honoured, groups, out, ds, mode, device,
                base, force, replaced):
    """The exact path: retrain only the SISA shards that hold a requested sample."""
    from unlearn.methods.sisa import SISA

    if chosen.estimator != "model":
        raise UnlearnInputError("requests apply --method sisa shards the model's own architecture "
                                "(estimator=model); scikit-learn ensembles cannot be written to a file")
    fitted_seconds = None
    if file_format(model_path) == SISA_FORMAT:
        sisa = SISA.load(model_path, ds, device)
        if not hasattr(sisa, "checkpoints_"):
            raise UnlearnInputError(f"{model_path}: SISA ensemble saved without its slice checkpoints; "
                                    "it cannot delete again")
    else:  # the base (or a descendant): an ensemble of the base's architecture, recipe and seed (the
        # ledger's record, not the file's), trained without what the model has honoured
        sisa = SISA(base["arch"], chosen.shards, chosen.slices, chosen.aggregation, recipe=base["recipe"],
                    arch_args=base["arch_args"], seed=int(base["seed"]), device=device)
        already = [r for r in requests if r.id in honoured]
        start = time.perf_counter()
        sisa.fit(ds, np.flatnonzero(~deleted_indices(already, len(ds.train))))
        fitted_seconds = time.perf_counter() - start
    steps, step_input = [], input_hash
    for group in groups:
        forget_indices = np.sort(np.concatenate([r.indices for r in group]))
        cost = sisa.delete(forget_indices)
        output_hash = sisa_identity(sisa)
        steps.append(jsonable({
            "requests": [r.id for r in group], "request_hashes": [r.hash for r in group],
            "input_hash": step_input, "output_hash": output_hash, "noop": output_hash == step_input,
            "method": "sisa", "hyperparameters": chosen.get_params(), "mode": mode, "exact": True,
            "retain_given": True, "n_forget": int(forget_indices.size), "n_retain": int(sisa.indices_.size),
            "seed": sisa.seed, "seconds": cost["seconds"] + (fitted_seconds or 0.0), "fit_seconds": fitted_seconds,
            "stats": cost}))
        step_input, fitted_seconds = output_hash, None

    def write(path, row):
        sisa.save(path, checkpoints=True, extra={"ledger_entry": ledger_entry(ledger, row)}, atomic=False)

    return record_steps(ledger, origin, steps, out, force, replaced, write)


def init_ledger(ledger: Ledger, model_path, dataset: str, data_root=None, device="cpu") -> dict:
    """Start a ledger for the base model `model_path`, trained on the whole training set of `dataset`."""
    from unlearn.audit import check_model

    if ledger.path.exists():
        raise UnlearnInputError(f"a ledger already exists at {ledger.path}; give another --ledger path")
    ds = data.load(dataset, root=data_root)
    model = models.load_model(model_path, ds, device)
    check_model(model, ds, f"--model {model_path}")
    training = model.spec.get("training") or {}
    if "recipe" not in training or "seed" not in training:
        raise UnlearnInputError(f"{model_path} records no training recipe and seed; the ledger needs them to "
                                "retrain the oracle (train the base model with `unlearn train`)")
    if int(training.get("n_train", len(ds.train))) != len(ds.train):
        raise UnlearnInputError(f"{model_path} was trained on {training['n_train']} samples, not on the whole "
                                f"training set of {ds.name} ({len(ds.train)}); the ledger's base must be")
    body = {"model_hash": file_content_hash(model_path), "model_path": str(Path(model_path).resolve()),
            "dataset": dataset, "dataset_fingerprint": ds.fingerprint, "n_train": len(ds.train),
            "arch": model.spec["arch"], "arch_args": model.spec["arch_args"], "recipe": training["recipe"],
            "seed": int(training["seed"]), "torch": torch.__version__}
    ledger.append("init", jsonable(body))
    return body
