"""The tables `unlearn bench` and `unlearn demo` print fit a 100-column terminal, one line per row.

Rendered from the committed mnist1d run (results/mnist1d: real records, three seeds, so every cell
has its ± half-width): the widest tables the project publishes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from unlearn.cli.bench import TERMINAL_WIDTH, summary_tables
from unlearn.experiments import load_config
from unlearn.experiments.store import ResultStore
from unlearn.experiments.summary import aggregate

RUN = Path(__file__).resolve().parents[1] / "results" / "mnist1d"


def rendered(width: int) -> tuple[list[str], list[dict]]:
    config = load_config(RUN / "config.yaml")
    rows = aggregate(list(ResultStore(RUN).current_records()), list(config.methods))
    console = Console(width=width, file=io.StringIO(), record=True)
    for item in summary_tables(rows, json.loads((RUN / "tuning.json").read_text())):
        console.print(item, highlight=False)
    return console.export_text().splitlines(), rows


def test_terminal_tables_fit_100_columns_with_every_row_on_one_line_and_nothing_cut():
    lines, rows = rendered(TERMINAL_WIDTH)
    assert max(len(line.rstrip()) for line in lines) <= TERMINAL_WIDTH
    assert not any("…" in line for line in lines)  # no cell shortened to fit
    for row in rows:  # each row is one line holding its method, its cells and its verdict
        label = row["method"] + (" (untuned)" if row["tuned"] is False else "")
        line = next(line for line in lines if line.startswith(label + " ") and
                    (row["verdict"] or "") in line and ("±" in line or row["status"] != "ok"))
        assert len(line.split("±")) - 1 in (0, 5)


def test_details_left_out_of_the_terminal_are_in_summary_md():
    lines, _ = rendered(TERMINAL_WIDTH)
    summary = (RUN / "summary.md").read_text()
    assert "[" in summary and not any("[" in line for line in lines)  # AUC intervals: summary.md only
    assert "retain acc" in summary and not any("retain acc" in line for line in lines)
