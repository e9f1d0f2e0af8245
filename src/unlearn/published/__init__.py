"""The published protocols and the demo's tuned preset, shipped inside the package.

A user who installed with `pip install .` has no repository: no `configs/`, no `results/`. So the
package carries what `unlearn bench NAME` and `unlearn demo` need:
- `<name>.yaml`: byte-identical copies of the repository's `configs/*.yaml` (the source, which a
  reader of the repository edits);
- `<protocol>-tuned.json`: a preset, the tuned hyperparameters of one forget set of a committed
  tuning record (`results/<protocol>/tuning.json`), with where they come from and the seeds they
  were tuned on; `unlearn demo` runs them and `unlearn forget --preset` applies them.
Both are derived, never edited here: `python tools/package_data.py` rewrites them from
`configs/` and `results/` (run it after a protocol or its tuning record changes), and
`tests/test_packaged.py` fails while they differ.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from unlearn.errors import UnlearnInputError

PRESET_SUFFIX = "-tuned.json"
# The forget set a preset keeps: the demo's (`unlearn demo`: a 10% random forget set).
PRESET_FORGET = "random-10%"


def _files():
    return resources.files(__name__)


def names() -> list[str]:
    """The packaged protocols, by name (`unlearn bench NAME`)."""
    return sorted(p.name[:-len(".yaml")] for p in _files().iterdir() if p.name.endswith(".yaml"))


def protocol_text(name: str) -> str:
    if name not in names():
        raise UnlearnInputError(f"no packaged protocol {name!r}; packaged: {', '.join(names())}")
    return (_files() / f"{name}.yaml").read_text()


def load_protocol(given: str | Path):
    """The protocol in file `given`, else the packaged protocol of that name."""
    from unlearn.experiments.protocols import load_config, parse_config

    path = Path(given)
    if path.is_file():
        return load_config(path)
    if str(given) in names():
        return parse_config(protocol_text(str(given)), source=f"packaged protocol {given}")
    raise UnlearnInputError(f"{str(given)!r} is neither a config file nor a packaged protocol; packaged: "
                            f"{', '.join(names())} (unlearn bench --list)")


def preset_names() -> list[str]:
    return sorted(p.name[:-len(PRESET_SUFFIX)] for p in _files().iterdir() if p.name.endswith(PRESET_SUFFIX))


def load_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise UnlearnInputError(f"--preset {name}: no such preset; packaged: {', '.join(preset_names()) or 'none'}")
    return json.loads((_files() / f"{name}{PRESET_SUFFIX}").read_text())


def preset_from_tuning(tuning: dict[str, Any], protocol: str, source: str, forget: str = PRESET_FORGET) -> dict:
    """A preset: the tuning record's header and its studies of forget set `forget` (trials left out),
    in the shape of a tuning outcome, so the bench and its summary read it as they read tuning.json."""
    studies = [{k: s[k] for k in ("forget", "setting", "method", "space", "best", "best_score")}
               for s in tuning["studies"] if s["forget"] == forget]
    if not studies:
        raise UnlearnInputError(f"{source}: no study of forget set {forget!r}")
    header = {k: tuning[k] for k in ("digest", "objective", "trials", "forget_seed", "model_seed", "scored_on")}
    if tuning.get("repeats", 1) > 1:
        header["repeats"] = tuning["repeats"]
    return {"protocol": protocol, "source": source, **header, "studies": studies}


def preset_hparams(preset: dict[str, Any], setting: str, method: str) -> dict[str, Any] | None:
    """The tuned values of `method` in `setting` (None: the preset did not tune it there)."""
    return next((s["best"] for s in preset["studies"] if s["setting"] == setting and s["method"] == method), None)
