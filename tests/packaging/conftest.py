"""packaging/ holds scripts, not a Python package (a package named ``packaging`` would shadow
the PyPI library), so its modules are imported from the folder itself."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
if str(PACKAGING) not in sys.path:
    sys.path.insert(0, str(PACKAGING))
