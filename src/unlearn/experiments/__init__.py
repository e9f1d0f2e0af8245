"""Config-driven benchmark runs: protocols, jobs, executors (local, Ray), the results store, reports.

    config = load_config("configs/digits.yaml")       # a Config; a protocol naming a `corpus` gives an LMConfig
    result = run_bench(config, "runs/digits")          # resumes whatever is already in runs/digits
"""

from unlearn.experiments.config import Config  # noqa: F401
from unlearn.experiments.lm_config import LMConfig  # noqa: F401
from unlearn.experiments.protocols import load_config, parse_config  # noqa: F401
from unlearn.experiments.runner import BenchResult, run_bench  # noqa: F401
