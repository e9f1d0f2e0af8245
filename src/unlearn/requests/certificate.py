"""A certificate as files: the JSON document, and a one-page HTML rendering of it for people.

The JSON is the certificate; the HTML says the same in a page a data-protection officer can read:
the verdict, the request, the ledger head it was issued against, the model's lineage, and each
check with the figure, the retrained model's figure, the gap and the threshold that decided it.
No scripts, no external files.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

from unlearn.errors import UnlearnInputError
from unlearn.files import staged_path


def certificate_paths(certificate: dict, out_dir, entry: int) -> tuple[Path, Path]:
    """certificate-ENTRY-request-ID-model-HASH.{json,html}: the ledger entry makes every certificate's name its own."""
    stem = f"certificate-{entry}-request-{certificate['request']['id']}-model-{certificate['model']['identity'][:12]}"
    return Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}.html"


def certificate_text(certificate: dict) -> str:
    """The JSON document, as written and hashed."""
    return json.dumps(certificate, indent=2, sort_keys=True, allow_nan=False) + "\n"


def stage_certificate(certificate: dict, out_dir, entry: int) -> tuple[list, str]:
    """Write the certificate of ledger entry `entry` to temporary files; return the moves and the JSON's sha256."""
    json_path, html_path = certificate_paths(certificate, out_dir, entry)
    moves = []
    try:
        for final, text in ((json_path, certificate_text(certificate)), (html_path, render_html(certificate))):
            tmp = staged_path(final)
            moves.append((tmp, final, False))
            tmp.write_text(text)
    except BaseException as err:
        for tmp, _, _ in moves:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UnlearnInputError(f"cannot write the certificate into {Path(out_dir)} ({err})") from err
        raise
    return moves, hashlib.sha256(certificate_text(certificate).encode()).hexdigest()


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "pass", False: "FAIL", None: "none"}[value]
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.2f}"
    return html.escape(str(value))


def render_html(c: dict) -> str:
    """The one-page rendering of certificate `c`."""
    esc = html.escape
    consistent = c["verdict"].startswith("consistent")
    request, ledger, model = c["request"], c["ledger"], c["model"]
    rows = []
    for name, check in c["checks"].items():
        if "gap" in check:
            detail = (f"model {_fmt(check['model'])}, retrained {_fmt(check['retrained'])} (mean of "
                      f"{len(check['retrained_each'])}), gap {_fmt(check['gap'])}, 95% bound {_fmt(check['gap_bound'])}"
                      f", allowed &lt; {_fmt(check['tolerance'])}; p (differs) {_fmt(check['p_value'])}, fails at ≤ "
                      f"{_fmt(check['fail_level'])}")
        elif "skipped" in check:
            detail = f"skipped: {esc(check['skipped'])}"
        else:
            detail = _fmt(check.get("count", ""))
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(check['figure'])}</td><td>{detail}</td>"
                    f"<td class='{'ok' if check['passed'] is not False else 'bad'}'>{esc(check['result'])}</td></tr>")
    lineage = "".join(
        f"<tr><td>{', '.join(map(str, step['requests']))}</td><td>{esc(step['method'])}"
        f"{' (exact)' if step['exact'] else ''}</td><td>{esc(step['mode'])}</td>"
        f"<td><code>{step['input_hash'][:12]}</code> → <code>{step['output_hash'][:12]}</code></td>"
        f"<td>{_fmt(step['seconds'])} s</td><td><code>{esc(json.dumps(step['hyperparameters'], sort_keys=True))}"
        f"</code></td></tr>" for step in c["lineage"])
    gap = c.get("gap_to_retrained")
    gap_line = "" if gap is None else (
        f"<p>Avg. Gap (gap-rmia) to the retrained model on this request's samples: <b>{_fmt(gap['gap-rmia'])}</b> "
        f"points ({', '.join(f'|Δ| {esc(k)} {_fmt(v)}' for k, v in gap.items() if not k.startswith('gap-'))}).</p>")
    exact = c.get("exact")
    exact_line = "" if exact is None else f"<p><b>Exact unlearning.</b> {esc(exact['statement'])}.</p>"
    thresholds = ", ".join(f"{esc(k)} = {_fmt(v)}" for k, v in c["thresholds"].items())
    stats = c.get("statistics", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deletion certificate: request {request['id']}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; }} td, th {{ border: 1px solid #ccc; padding: .25em .5em; }}
th {{ background: #f3f3f3; text-align: left; }} code {{ font-size: 90%; }}
.verdict {{ font-size: 1.4em; padding: .4em .7em; border-radius: .3em; display: inline-block; }}
.yes {{ background: #dff3e0; color: #14521b; }} .no {{ background: #fbe0e0; color: #7a1212; }}
.ok {{ color: #14521b; }} .bad {{ color: #7a1212; font-weight: bold; }}
</style></head><body>
<h1>Deletion certificate: request {request['id']}</h1>
<p class="verdict {'yes' if consistent else 'no'}">{esc(c['verdict'])} ({esc(c['kind'])})</p>
<table>
<tr><th>request</th><td>{request['id']}: {request['n_samples']} training samples of {esc(c['base']['dataset'])};
requested by {esc(request['requester'])} on {esc(request['timestamp'])}; reason: {esc(request['reason'])}</td></tr>
<tr><th>model</th><td><code>{model['identity']}</code> ({esc(model['path'])})</td></tr>
<tr><th>base model</th><td><code>{c['base']['identity']}</code> ({esc(c['base']['arch'])})</td></tr>
<tr><th>issued against ledger</th><td>head <code>{ledger['head']}</code> ({ledger['entries']} entries, {esc(ledger['path'])});
request entry <code>{request['hash']}</code></td></tr>
<tr><th>requests honoured</th><td>{', '.join(map(str, c['honoured']))} ({c['n_deleted']} samples deleted in all)</td></tr>
</table>
{exact_line}{gap_line}
<h2>Checks</h2>
<table><tr><th>check</th><th>figure</th><th>measured</th><th>result</th></tr>{''.join(rows)}</table>
<p>D_F: the request's samples; D_T: {esc(c.get("settings", {}).get("d_t", "the test split"))}, never
trained on. Tolerances (points) that decided the verdict: {thresholds}. A check passes when the model is shown
within its tolerance of the retrained models (at most a {_fmt(stats.get('false_pass', ''))} chance for a model
further off), fails when it is shown to differ from them (at most a {_fmt(stats.get('false_fail', ''))} chance, all
checks together, for a model that is one more retrain), and is inconclusive otherwise. The verdict is "consistent
with retraining" when every check passed, "not consistent" when one failed, "inconclusive" otherwise.</p>
<h2>Lineage of the model</h2>
<table><tr><th>requests</th><th>method</th><th>mode</th><th>input → output (identity)</th><th>time</th>
<th>hyperparameters</th></tr>{lineage}</table>
<p>Every figure, the per-sample membership scores and the settings are in the JSON certificate beside this page.</p>
</body></html>
"""


def issue_certificate(ledger, certificate: dict, out_dir) -> tuple[Path, Path]:
    """Record the certificate in the ledger (verdict and the JSON's sha256) and write its files.

    The files are named after the certificate's own ledger entry, written to temporary paths in the
    same transaction and placed once the entry commits, never over an existing file: a second
    verification of the same request and model gets new files, and the sha256 in every
    certificate entry keeps matching its file. `certificate` gains "entry", its entry's number.
    """
    out_dir = Path(out_dir)
    staged: list = []

    def build(existing) -> list[tuple[str, dict]]:
        certificate["entry"] = len(existing) + 1
        moves, digest = stage_certificate(certificate, out_dir, certificate["entry"])
        staged.extend(moves)
        return [("certificate", {"request": certificate["request"]["id"], "verdict": certificate["verdict"],
                                 "kind": certificate["kind"], "model_hash": certificate["model"]["identity"],
                                 "issued_against": certificate["ledger"]["head"], "sha256": digest,
                                 "path": str(moves[0][1].resolve())})]

    ledger._append(build, lambda written: staged)
    return staged[0][1], staged[1][1]
