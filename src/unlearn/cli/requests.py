"""`unlearn requests`: the ledger of deletion requests, their unlearning, and a certificate per request.

    unlearn requests init --model base.safetensors --dataset mnist1d
    unlearn requests add --indices 3,14,15 --reason "GDPR Art. 17" --requester alice
    unlearn requests apply --model base.safetensors --method amun --out m1.safetensors
    unlearn requests verify 1 --model m1.safetensors
    unlearn requests list | show 1 | check

The ledger is an SQLite file beside the model bank (`--ledger` to choose another). Bad input (an
unknown request, a model that does not descend from the ledger's base, a corrupt ledger, indices
out of range) exits 2 with a one-line message and changes neither the ledger nor any model.
"""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import (
    BankOpt,
    DataRootOpt,
    DeviceOpt,
    SeedOpt,
    app,
    check_device,
    console,
    parse_sets,
    table,
)
from unlearn.errors import UnlearnInputError

requests_app = typer.Typer(no_args_is_help=True, help="Deletion requests: a hash-chained ledger, successive "
                                                     "unlearning, and a verification certificate per request.")
app.add_typer(requests_app, name="requests")

LedgerOpt = typer.Option(None, "--ledger", help="the ledger file (default: requests.sqlite beside the model bank)")


def open_ledger(ledger: Path | None, bank: Path | None):
    from unlearn.bank import default_root
    from unlearn.requests import Ledger

    if ledger is None:
        ledger = Path(bank if bank is not None else default_root()).parent / "requests.sqlite"
    return Ledger(ledger)


def parse_indices(texts: list[str], n_train: int) -> list[int]:
    """"3,14,15" or "10-19,25" (repeatable: every --indices is joined): training indices, ranges inclusive.

    A range is checked against the training set before it is expanded, so a typo such as
    0-20000000 is refused at once instead of filling memory."""
    out = []
    for part in (p.strip() for text in texts for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part[1:]:  # a range; a leading "-" is a (negative, refused later) index
                low, high = int(part[0] + part[1:].split("-", 1)[0]), int(part[1:].split("-", 1)[1])
            else:
                out.append(int(part))
                continue
        except ValueError as err:
            raise UnlearnInputError(f"--indices: {part!r} is not an index or a range like 10-19") from err
        if not 0 <= low <= high < n_train:
            raise UnlearnInputError(f"--indices: range {part} is not within the training set "
                                    f"(0-{n_train - 1}, low <= high)")
        out.extend(range(low, high + 1))
    return out


@requests_app.command("init")
def init(
    model: Path = typer.Option(..., "--model", "-m", help="the base model (.safetensors), trained on the whole training set"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="the dataset it was trained on (default: the one "
                                                                "recorded in --model's file)"),
    ledger: Path = LedgerOpt,
    data_root: Path = DataRootOpt,
    bank: Path = BankOpt,
):
    """Start a ledger for a base model: records its content hash, dataset and training recipe."""
    from unlearn import models
    from unlearn.cli.common import DEFAULT_DATASET
    from unlearn.requests import init_ledger

    book = open_ledger(ledger, bank)
    dataset = dataset or (models.read_spec(model).get("training") or {}).get("dataset") or DEFAULT_DATASET
    body = init_ledger(book, model, dataset, data_root)
    console.print(f"ledger {book.path}: base model {body['model_hash'][:12]} ({body['arch']} on {dataset}, "
                  f"{body['n_train']} training samples)")


@requests_app.command("add")
def add(
    indices: list[str] = typer.Option(None, "--indices", "-i", help="training indices, e.g. 3,14,15 or 10-19 "
                                                                     "(repeatable: all are joined)"),
    forget_csv: Path = typer.Option(None, "--forget", "-f", help="or a CSV with an 'index' column"),
    reason: str = typer.Option(..., "--reason", help="why the samples must go (free text)"),
    requester: str = typer.Option(..., "--requester", help="who asked"),
    timestamp: str = typer.Option(None, "--timestamp", help="when it was asked, ISO 8601 (default: now, UTC)"),
    ledger: Path = LedgerOpt,
    bank: Path = BankOpt,
):
    """Record a deletion request; out-of-range, duplicate or already requested indices are refused."""
    from unlearn import data

    if (not indices) == (forget_csv is None):
        raise UnlearnInputError("give the request's samples as exactly one of --indices or --forget")
    book = open_ledger(ledger, bank)
    n_train = book.base()["n_train"]
    chosen = parse_indices(indices, n_train) if indices else data.load_forget_csv(forget_csv, n_train).forget
    request = book.add_request(chosen, n_train, reason, requester, timestamp)
    console.print(f"request {request.id}: {request.indices.size} samples, entry {request.hash[:12]}")


@requests_app.command("list")
def list_requests(ledger: Path = LedgerOpt, bank: Path = BankOpt):
    """Every request, with the unlearning steps and certificates recorded for it."""
    book = open_ledger(ledger, bank)
    entries = book.entries()
    rows = []
    for request in book.requests(entries):
        applied = [e for e in entries if e.kind == "apply" and request.id in e.body["requests"]]
        certified = [e for e in entries if e.kind == "certificate" and e.body["request"] == request.id]
        honoured = [e for e in applied if not e.body["noop"]]
        rows.append([request.id, request.timestamp, request.requester, request.indices.size, request.reason[:40],
                     f"{len(honoured)} model(s)" if honoured else "pending",
                     "; ".join(f"entry {e.seq}: {e.body['verdict']}" for e in certified)])
    console.print(table(f"requests in {book.path} (head {book.head(entries)[:12]})",
                        ["id", "time", "requester", "samples", "reason", "applied", "certificates"], rows))


@requests_app.command("show")
def show(request_id: int = typer.Argument(..., help="the request's id"), ledger: Path = LedgerOpt,
         bank: Path = BankOpt):
    """One request: its samples, and every unlearning step and certificate that names it."""
    book = open_ledger(ledger, bank)
    entries = book.entries()
    request = book.request(request_id, entries)
    shown = ", ".join(map(str, request.indices[:20].tolist())) + (" ..." if request.indices.size > 20 else "")
    console.print(f"request {request.id} (entry {request.hash[:12]}): {request.indices.size} samples [{shown}]\n"
                  f"  requested by {request.requester} at {request.timestamp}: {request.reason}")
    for e in entries:
        if e.kind == "apply" and request_id in e.body["requests"]:
            noop = " (no-op: the model did not change; honours nothing)" if e.body["noop"] else ""
            console.print(f"  entry {e.seq}, applied: {e.body['method']} ({e.body['mode']}) "
                          f"{e.body['input_hash'][:12]} -> {e.body['output_hash'][:12]} in {e.body['seconds']:.1f} s"
                          f"{noop}")
        if e.kind == "certificate" and e.body["request"] == request_id:
            console.print(f"  entry {e.seq}, certificate: {e.body['verdict']} ({e.body['kind']}) for model "
                          f"{e.body['model_hash'][:12]}: {e.body['path']}")


@requests_app.command("check")
def check(ledger: Path = LedgerOpt, bank: Path = BankOpt,
          expect_head: str = typer.Option(None, "--expect-head", help="a full head hash kept elsewhere (e.g. "
                                                                        "from a certificate): also detects a truncated "
                                                                        "ledger")):
    """Check the hash chain: exit 2 naming the first entry edited, removed or reordered."""
    book = open_ledger(ledger, bank)
    entries = book.check(expect_head)
    counts = {kind: sum(e.kind == kind for e in entries) for kind in ("request", "apply", "certificate")}
    console.print(f"ledger {book.path}: ok, {len(entries)} entries ({counts['request']} requests, "
                  f"{counts['apply']} unlearning steps, {counts['certificate']} certificates), "
                  f"head {book.head(entries)}")


@requests_app.command("apply")
def apply(
    model: Path = typer.Option(..., "--model", "-m", help="a model descending from the ledger's base model"),
    method: str = typer.Option(..., "--method", help="unlearning method: amun, retrain, ft, ..., sisa (exact)"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write the unlearned model"),
    sets: list[str] = typer.Option(None, "--set", help="method hyperparameter key=value, repeatable"),
    all_at_once: bool = typer.Option(False, "--all-at-once", help="one call on every pending request "
                                                                  "(default: one request at a time)"),
    no_retain: bool = typer.Option(False, "--no-retain", help="do not give the method the retain set D_R"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out (recorded in the ledger)"),
    ledger: Path = LedgerOpt,
    data_root: Path = DataRootOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    bank: Path = BankOpt,
):
    """Honour every request --model has not honoured yet; record the lineage in the ledger."""
    from unlearn.bank import ModelBank
    from unlearn.requests import apply_requests

    check_device(device)
    book = open_ledger(ledger, bank)
    steps = apply_requests(book, model, method, out, hyperparameters=parse_sets(sets), all_at_once=all_at_once,
                           with_retain=not no_retain, seed=seed, device=device, bank=ModelBank(bank),
                           data_root=data_root, force=force)
    rows = [[", ".join(map(str, s["requests"])), s["n_forget"], s["input_hash"][:12], s["output_hash"][:12],
             s["seconds"]] for s in steps]
    console.print(table(f"{method} ({steps[0]['mode']}{', exact' if steps[0]['exact'] else ''}) -> {out}",
                        ["requests", "samples", "input model", "output model", "seconds"], rows))


@requests_app.command("verify")
def verify(
    request_id: int = typer.Argument(..., help="the request's id"),
    model: Path = typer.Option(..., "--model", "-m", help="the model that honoured it"),
    thresholds: list[str] = typer.Option(None, "--threshold", help="key=points: the tolerances accuracy_gap, "
                                                                   "relearn_gap, flagged_excess"),
    n_oracles: int = typer.Option(4, "--oracles", help="models retrained from different seeds to compare with "
                                                       "(trained once, in the bank)"),
    n_reference: int = typer.Option(4, "--n-reference", help="RMIA reference models (even; trained once, in the bank)"),
    out_dir: Path = typer.Option(None, "--out-dir", help="where to write the certificate (default: "
                                                        "certificates/ beside the ledger)"),
    ledger: Path = LedgerOpt,
    data_root: Path = DataRootOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    bank: Path = BankOpt,
):
    """Audit one request on --model against the model retrained without every honoured request."""
    from unlearn.bank import ModelBank
    from unlearn.requests import issue_certificate, verify_request
    from unlearn.requests.apply import check_writable_folder

    check_device(device)
    book = open_ledger(ledger, bank)
    out_dir = out_dir or book.path.parent / "certificates"
    book.check_writable()  # before the audit's minutes: its certificate must be recordable
    check_writable_folder(out_dir, f"--out-dir {out_dir}")
    certificate = verify_request(book, request_id, model, thresholds=parse_sets(thresholds), n_oracles=n_oracles,
                                 n_reference=n_reference, seed=seed, device=device, bank=ModelBank(bank),
                                 data_root=data_root)
    json_path, html_path = issue_certificate(book, certificate, out_dir)
    rows = [[name, c["figure"], c.get("model", c.get("count", "")), c.get("retrained", ""), c.get("gap", ""),
             c.get("gap_bound", ""), c.get("tolerance", ""), c.get("p_value", ""), c["result"]]
            for name, c in certificate["checks"].items()]
    console.print(table(f"request {request_id} on model {certificate['model']['identity'][:12]}: "
                        f"{certificate['verdict']} ({certificate['kind']})",
                        ["check", "figure", "model", "retrained (mean)", "gap", "gap bound (95%)", "allowed",
                         "p (differs)", "result"], rows))
    if "gap_to_retrained" in certificate:
        console.print(f"Avg. Gap to the retrained model on the request's samples: "
                      f"{certificate['gap_to_retrained']['gap-rmia']:.2f} (gap-rmia)")
    console.print(f"certificate: {json_path} and {html_path} (ledger head {certificate['ledger']['head'][:12]})")
