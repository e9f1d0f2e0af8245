"""Loading a protocol of either family: a classifier protocol names a `dataset`, an LM one a `corpus`.

    config = load_config("configs/mnist1d.yaml")     # unlearn.experiments.config.Config
    config = load_config("configs/lm-facts.yaml")    # unlearn.experiments.lm_config.LMConfig

Both are validated completely before any work starts, with the file, line and key of a problem.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from unlearn.errors import UnlearnInputError
from unlearn.experiments import config as classifier
from unlearn.experiments.lm_config import LMConfig, parse_lm_config


def parse_config(text: str, source: str = "<config>") -> classifier.Config | LMConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None  # the classifier parser names the line of the YAML error
    if isinstance(raw, dict) and "corpus" in raw:
        return parse_lm_config(text, source)
    return classifier.parse_config(text, source)


def load_config(path: str | Path) -> classifier.Config | LMConfig:
    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"config file {str(path)!r} does not exist")
    return parse_config(path.read_text(), source=str(path))
