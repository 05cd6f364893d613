#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Exit code 5 of pytest (no test collected) is a failure here.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh" || exit 1
cd "$here"
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "error: pytest collected no tests; the suite must not be empty." >&2
  exit 1
fi
exit $rc
