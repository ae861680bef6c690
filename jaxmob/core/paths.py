"""Where jaxmob finds the optional raw public data folder (each environment knows its own bundled scenarios)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # jaxmob/
REPO_DIR = PACKAGE_DIR.parent


def shared_data_dir() -> Path | None:
    """The raw public data folder: `$JAXMOB_SHARED_DATA`, else `../shared/data` beside
    the repository. None when absent (a fresh clone needs only the bundled scenarios)."""
    env = os.environ.get("JAXMOB_SHARED_DATA")
    candidates = [Path(env)] if env else [REPO_DIR.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None
