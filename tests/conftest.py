"""Shared test fixtures.

Tests that read the real public data in `../shared/data` take the `shared_data`
fixture, which skips with a clear reason when that folder is absent (a user's
fresh clone); CI always has it. `JAXMOB_SHARED_DATA` overrides the location.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from jaxmob.core.paths import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder ../shared/data is absent (set JAXMOB_SHARED_DATA to point at it)")
    return path
