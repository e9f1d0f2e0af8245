"""Print docs/results.md's "Against the papers" table from the committed records.

    python tools/papers_table.py results/mnist1d results/cifar10-cpu

Our columns come from each run's summary.csv (10% random forget, gap-rmia, mean ± 95% t
half-width over the run's draws); the paper columns are the AMUN paper's Avg. Gap on CIFAR-10
ResNet-18, 10% random forget, mean of 27 runs (the AMUN paper, ICML 2025, as cited in
docs/methods.md). Written so the table cannot drift from the records it cites.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

# method: (paper with D_R, paper without D_R); None = not in the paper, "n/a" = needs D_R.
PAPER = {
    "original": (None, None), "retrain-floor": (None, None),
    "ft": ("2.06", "n/a"), "rl": ("1.74", "4.31"), "ga": ("4.28", "68.53"), "neggrad+": (None, None),
    "bs": ("3.48", "4.20"), "l1-sparse": ("2.16", "n/a"), "salun": ("1.44", "4.11"), "scrub": (None, None),
    "amun": ("0.62", "1.94"), "amun-salun": ("0.68", "1.77"), "sg": (None, None),
}


def gaps(run: Path) -> dict[tuple[str, str], str]:
    out = {}
    with open(run / "summary.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["forget"] != "random-10%":
                continue
            if row["status"] == "n/a":  # the method needs the retain set
                out[(row["method"], row["setting"])] = "n/a"
                continue
            mean, low = float(row["gap.gap-rmia_mean"]), float(row["gap.gap-rmia_ci_low"])
            out[(row["method"], row["setting"])] = f"{mean:.2f} ± {mean - low:.2f}"
    return out


def cell(value: str | None) -> str:
    return "–" if value is None else value


def main(runs: list[str]) -> None:
    measured = [gaps(Path(run)) for run in runs]
    names = [Path(run).name for run in runs]
    header = ["method", "paper, with D_R", "paper, without D_R"]
    for name in names:
        header += [f"{name}, with D_R", f"{name}, without D_R"]
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for method, paper in PAPER.items():
        row = [method, cell(paper[0]), cell(paper[1])]
        for table in measured:
            for setting in ("with_retain", "without_retain"):
                row.append(table.get((method, setting), "–"))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
