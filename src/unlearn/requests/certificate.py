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

from unlearn.files import write_text


def certificate_paths(certificate: dict, out_dir) -> tuple[Path, Path]:
    stem = f"request-{certificate['request']['id']}-model-{certificate['model']['content_hash'][:12]}"
    return Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}.html"


def write_certificate(certificate: dict, out_dir) -> tuple[Path, Path, str]:
    """Write `certificate` as JSON and HTML (atomically); return both paths and the JSON's sha256."""
    json_path, html_path = certificate_paths(certificate, out_dir)
    text = json.dumps(certificate, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_text(json_path, text)
    write_text(html_path, render_html(certificate))
    return json_path, html_path, hashlib.sha256(text.encode()).hexdigest()


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "pass", False: "FAIL", None: "not run"}[value]
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
            detail = (f"model {_fmt(check['model'])}, retrained {_fmt(check['retrained'])}, "
                      f"gap {_fmt(check['gap'])}, allowed ≤ {_fmt(check['threshold'])}")
        elif "skipped" in check:
            detail = f"skipped: {esc(check['skipped'])}"
        else:
            detail = _fmt(check.get("count", ""))
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(check['figure'])}</td><td>{detail}</td>"
                    f"<td class='{'ok' if check['passed'] is not False else 'bad'}'>{_fmt(check['passed'])}</td></tr>")
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
<tr><th>model</th><td><code>{model['content_hash']}</code> ({esc(model['path'])})</td></tr>
<tr><th>base model</th><td><code>{c['base']['content_hash']}</code> ({esc(c['base']['arch'])})</td></tr>
<tr><th>issued against ledger</th><td>head <code>{ledger['head']}</code> ({ledger['entries']} entries, {esc(ledger['path'])});
request entry <code>{request['hash']}</code></td></tr>
<tr><th>requests honoured</th><td>{', '.join(map(str, c['honoured']))} ({c['n_deleted']} samples deleted in all)</td></tr>
</table>
{exact_line}{gap_line}
<h2>Checks</h2>
<table><tr><th>check</th><th>figure</th><th>measured</th><th>result</th></tr>{''.join(rows)}</table>
<p>D_F: the request's samples; D_T: {esc(c.get("settings", {}).get("d_t", "the test split"))}, never
trained on. Thresholds that decided the verdict: {thresholds}. The verdict is "consistent with retraining" when
every check that ran passed.</p>
<h2>Lineage of the model</h2>
<table><tr><th>requests</th><th>method</th><th>mode</th><th>input → output (content hash)</th><th>time</th>
<th>hyperparameters</th></tr>{lineage}</table>
<p>Every figure, the per-sample membership scores and the settings are in the JSON certificate beside this page.</p>
</body></html>
"""


def issue_certificate(ledger, certificate: dict, out_dir) -> tuple[Path, Path]:
    """Write the certificate's files, then record it in the ledger (verdict and the JSON's sha256)."""
    json_path, html_path, digest = write_certificate(certificate, out_dir)
    ledger.append("certificate", {"request": certificate["request"]["id"], "verdict": certificate["verdict"],
                                  "kind": certificate["kind"], "model_hash": certificate["model"]["content_hash"],
                                  "issued_against": certificate["ledger"]["head"], "sha256": digest,
                                  "path": str(Path(json_path).resolve())})
    return json_path, html_path
