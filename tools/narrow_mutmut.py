"""Narrow a copy's [tool.mutmut] to $MUTATION_ONLY source files and $MUTATION_TESTS test files.

Used by tools/mutation-check.sh on its copy of the tree (never on the checkout): each variable
holds space-separated paths and replaces `only_mutate` or `pytest_add_cli_args_test_selection`.
"""

import os
import re
import sys

path = sys.argv[1]
text = open(path).read()
for key, variable in (("only_mutate", "MUTATION_ONLY"), ("pytest_add_cli_args_test_selection", "MUTATION_TESTS")):
    if os.environ.get(variable):
        paths = ", ".join(f'"{p}"' for p in os.environ[variable].split())
        text, count = re.subn(rf"^{key} = \[.*?\]", f"{key} = [{paths}]", text, count=1, flags=re.M | re.S)
        if count != 1:
            sys.exit(f"{path}: no {key} in [tool.mutmut] to narrow")
open(path, "w").write(text)
