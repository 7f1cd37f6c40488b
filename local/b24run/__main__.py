"""``python -m b24run`` (what ``make run`` starts)."""

from __future__ import annotations

import sys

from b24run.simulated import SimulatorHook
from b24stack.__main__ import main

if __name__ == "__main__":
    sys.exit(main(hooks=[SimulatorHook()]))
