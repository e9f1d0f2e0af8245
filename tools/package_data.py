"""Rewrite the package's data from the repository: `python tools/package_data.py`.

- src/unlearn/published/<name>.yaml: byte-identical copies of configs/<name>.yaml;
- src/unlearn/published/<protocol>-tuned.json: the preset `unlearn demo` and `unlearn forget
  --preset` use, derived from results/<protocol>/tuning.json (the committed tuning record).
Run it after a protocol changes or a protocol's tuning is re-run and committed; tests/test_packaged.py
fails until the package agrees with configs/ and results/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "unlearn" / "published"
PRESETS = ["mnist1d"]  # protocols whose committed tuning record the package ships as a preset


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from unlearn.files import write_text
    from unlearn.published import PRESET_SUFFIX, preset_from_tuning

    for stale in PACKAGE.glob("*.yaml"):
        if not (ROOT / "configs" / stale.name).is_file():
            stale.unlink()
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        shutil.copyfile(config, PACKAGE / config.name)  # bytes, comments and all
    for protocol in PRESETS:
        record = Path("results") / protocol / "tuning.json"
        preset = preset_from_tuning(json.loads((ROOT / record).read_text()), protocol, str(record))
        write_text(PACKAGE / f"{protocol}{PRESET_SUFFIX}", json.dumps(preset, indent=1) + "\n")
    print(f"wrote {PACKAGE.relative_to(ROOT)}: {len(list(PACKAGE.glob('*.yaml')))} protocols, {len(PRESETS)} presets")


if __name__ == "__main__":
    main()
