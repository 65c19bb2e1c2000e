"""`python -m runner PLAN ...` is `runplan PLAN ...`."""

from __future__ import annotations

import sys

from runner.cli import entry

sys.exit(entry())
