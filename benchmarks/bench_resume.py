"""Resume and caching of `unlearn bench`, measured: a killed bench completes, a repeated one is cheap.

Runs the real command three times on one protocol, with a fresh model bank and run directory:
1. `unlearn bench CONFIG` killed with SIGKILL once `--kill-after` job records exist (mid-way);
2. the same command again: it must finish, training only what the bank lacks;
3. the same command a third time: it must train nothing and run no job.
Prints the wall times and what each run reported, and checks every record is whole JSON.

    .venv/bin/python benchmarks/bench_resume.py [--config configs/digits.yaml] [--kill-after 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNLEARN = str(Path(sys.executable).with_name("unlearn"))


def bench(config: str, run_dir: Path, env: dict, kill_after: int | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([UNLEARN, "bench", config, "--out", str(run_dir)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if kill_after is not None:
        while proc.poll() is None and len(list((run_dir / "runs").glob("*.json"))) < kill_after:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--kill-after", type=int, default=3, help="kill the first run once this many records exist")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    env = {**os.environ, "UNLEARN_BANK": str(home / "bank"), "COLUMNS": "400"}  # rich: no line wrapping
    run_dir = home / "run"
    try:
        killed, _ = bench(args.config, run_dir, env, kill_after=args.kill_after)
        after_kill = len(list((run_dir / "runs").glob("*.json")))
        resumed, out_resumed = bench(args.config, run_dir, env)
        repeated, out_repeated = bench(args.config, run_dir, env)
        records = [json.loads(p.read_text()) for p in (run_dir / "runs").glob("*.json")]  # whole JSON or raises
        leftovers = list((run_dir / "runs").glob(".*.tmp"))
        print(f"protocol {args.config}; fresh bank {home / 'bank'}")
        print("| run | wall time (s) | what it reported |\n| --- | --- | --- |")
        print(f"| 1: killed (SIGKILL) after {after_kill} records | {killed:.1f} | - |")
        for name, seconds, out in (("2: resumed", resumed, out_resumed), ("3: repeated", repeated, out_repeated)):
            summary = next((line.strip() for line in out.splitlines() if " jobs: " in line), out.strip()[-200:])
            print(f"| {name} | {seconds:.1f} | {summary} |")
        print(f"records: {len(records)}, all status ok/failed: {sorted({r['status'] for r in records})}, "
              f"temporary leftovers: {len(leftovers)}")
        print(f"repeated / resumed wall time: {repeated / resumed:.2f}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
