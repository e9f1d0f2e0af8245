#!/usr/bin/env bash
# Mutation check of the core modules with mutmut 3 (docs/testing.md). Not run in CI.
#
#   tools/mutation-check.sh                         # every core module (hours on 2 cores)
#   tools/mutation-check.sh "unlearn.audit.gap.*"   # one module (mutant-name globs, as mutmut run)
#   tools/mutation-check.sh --results               # the table of the last run
#   MUTATION_ONLY="src/unlearn/requests/ledger.py" MUTATION_TESTS="tests/test_ledger.py" \
#       tools/mutation-check.sh "unlearn.requests.ledger.*"   # one module against its own tests
#
# Works on a copy of the tree (tracked and new files) in $MUTATION_DIR, so the checkout never
# sees mutants/; the copy's mutants/ keeps mutmut's results, and $MUTATION_DIR/bank the model
# bank, so a second run re-tests only what changed and trains no model twice. One torch thread
# per process: bit-identical weights between runs (the retrain test compares bank and direct
# training), and $JOBS children (default 2) leave the machine usable.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
work=${MUTATION_DIR:-${TMPDIR:-/tmp}/unlearn-mutation}
mkdir -p "$work/tree"
export UNLEARN_BANK="$work/bank" UNLEARN_CACHE="$work/cache" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$work/tree"
if [ "${1:-}" = "--results" ]; then
    exec "$python" -m mutmut results --all true
fi
git -C "$repo" ls-files -co --exclude-standard -z | (cd "$repo" && tar --null -T - -cf -) | tar -xf -
# $MUTATION_ONLY / $MUTATION_TESTS (space-separated paths) narrow the copy's [tool.mutmut] to some
# source files and the test files that run against them: one module's check without generating
# every core module's mutants or running every core test for coverage first.
if [ -n "${MUTATION_ONLY:-}${MUTATION_TESTS:-}" ]; then
    "$python" tools/narrow_mutmut.py pyproject.toml
fi
exec "$python" -m mutmut run --max-children "${JOBS:-2}" "$@"
