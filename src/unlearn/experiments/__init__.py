"""Config-driven benchmark runs: protocols, jobs, executors (local, Ray), the results store, reports.

    config = load_config("configs/digits.yaml")
    result = run_bench(config, "runs/digits")          # resumes whatever is already in runs/digits
"""

from unlearn.experiments.config import Config, load_config, parse_config  # noqa: F401
from unlearn.experiments.runner import BenchResult, run_bench  # noqa: F401
