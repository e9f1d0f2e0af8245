"""The HTML report in a real browser: headless Chromium renders its tables and decodes every image.

The report itself has no scripts; the test loads a copy with a one-line probe appended that, once
the page has loaded, writes into the DOM how many images decoded (naturalWidth > 0) and how many
table rows were laid out with a height. Chromium's --dump-dom then hands the DOM back.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const rows = [...document.querySelectorAll('table.summary tr')];
  document.body.dataset.images = imgs.length;
  document.body.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.rows = rows.length;
  document.body.dataset.shownRows = rows.filter(r => r.getBoundingClientRect().height > 0).length;
});</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium; .ci/run does)")
def test_report_renders_tables_and_every_image(tmp_path, bank):
    from test_experiments import tiny_protocol

    from unlearn import audit
    from unlearn.experiments import parse_config, run_bench
    from unlearn.experiments.report import write_report

    if not hasattr(audit, "evaluate"):
        pytest.skip("unlearn.audit.evaluate has not landed yet; the bench audits through it")
    run_dir = tmp_path / "run"
    config = parse_config(yaml.safe_dump(tiny_protocol(), sort_keys=False))
    run_bench(config, run_dir, bank=bank, progress=False)
    page = write_report(run_dir).read_text()
    n_images = page.count("<img ")
    n_rows = sum(table.count("<tr>") for table in re.findall(r"<table class='summary'>.*?</table>", page))
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body))
    assert n_images >= 5 and n_rows >= 6
    assert attrs == {"images": str(n_images), "decoded": str(n_images), "rows": str(n_rows),
                     "shown-rows": str(n_rows)}
