"""Progress in a log: plain lines where stderr is not a terminal, at a bounded rate, silenced by --quiet."""

from __future__ import annotations

import io
import re

import pytest

from unlearn.progress import PlainProgress, progress_bar


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_recent_line(monkeypatch):
    # The gap between lines holds across instances; each test starts as if none was written.
    monkeypatch.setattr(PlainProgress, "last_line", -float("inf"))


def test_lines_give_stage_done_total_elapsed_and_estimate_at_most_one_per_gap():
    clock, out = Clock(), io.StringIO()
    bar = PlainProgress(out, min_gap=5.0, heartbeat=30.0, clock=clock)
    task = bar.add_task("training models for the bank", total=10)
    for _ in range(4):  # 4 steps of 2 s each: lines at 2 s and at 8 s (4 and 6 s come too soon after)
        clock.now += 2.0
        bar.advance(task)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\[unlearn \d\d:\d\d:\d\d\] training models for the bank: 1/10, 0:00:02 elapsed, "
                        r"about 0:00:18 left", lines[0])
    assert lines[1].endswith("training models for the bank: 4/10, 0:00:08 elapsed, about 0:00:12 left")


def test_a_long_step_still_writes_a_line_every_heartbeat():
    clock, out = Clock(), io.StringIO()
    bar = PlainProgress(out, min_gap=5.0, heartbeat=30.0, clock=clock)
    bar.add_task("tuning: trial 1 of 8", total=3)
    bar.beat()  # nothing written yet: the loop has just begun, a line now says it is alive
    for _ in range(6):  # no step for 3 minutes: one line every 30 s
        clock.now += 29.0
        bar.beat()
        clock.now += 1.0
        bar.beat()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 6
    assert lines[-1].endswith("tuning: trial 1 of 8: 0/3, 0:03:00 elapsed")  # no estimate before a step


def test_finished_and_empty_tasks_write_no_heartbeat():
    clock, out = Clock(), io.StringIO()
    bar = PlainProgress(out, min_gap=5.0, heartbeat=30.0, clock=clock)
    bar.add_task("auditing retrained models", total=0)
    done = bar.add_task("unlearning and auditing", total=1)
    clock.now += 1.0
    bar.advance(done)
    clock.now += 100.0
    bar.beat()
    assert out.getvalue().splitlines()[-1].endswith("unlearning and auditing: 1/1, 0:00:01 elapsed, done")
    assert len(out.getvalue().splitlines()) == 1


def test_progress_bar_chooses_by_terminal_and_quiet_silences_it():
    from rich.progress import Progress

    assert isinstance(progress_bar(None), PlainProgress)  # pytest's stderr is not a terminal
    assert isinstance(progress_bar(True), Progress) and isinstance(progress_bar(False), Progress)
    assert progress_bar(False).disable


@pytest.mark.parametrize("quiet", [False, True])
def test_train_writes_progress_lines_to_a_log_unless_quiet(tmp_path, quiet):
    from typer.testing import CliRunner

    from unlearn.cli import app

    args = ["train", "--dataset", "digits", "--set", "epochs=2", "--arch", "hidden=[16]",
            "--bank", str(tmp_path / "bank")] + (["--quiet"] if quiet else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("[unlearn ")]
    if quiet:
        assert progress == []
    else:
        assert progress and re.search(r"training mlp: \d+/\d+, \d:\d\d:\d\d elapsed", progress[0])
