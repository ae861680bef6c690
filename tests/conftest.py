"""Shared test fixtures.

Tests that read the real public data in `../shared/data` take the `shared_data`
fixture, which skips with a clear reason when that folder is absent (a user's
fresh clone); CI always has it. `JAXMOB_SHARED_DATA` overrides the location.

A test session compiles many of the same XLA programs more than once (the same small training
config in several tests, a `train` subprocess and the `eval` that follows it), so it keeps one
persistent compilation cache, shared by the xdist workers and every subprocess they start, and
new with each session (it only saves compile time; tracing and every result are unchanged).
Most of the suite's time is XLA compiling small programs that then run for milliseconds, so
tests compile with LLVM's optimisation off (`--xla_backend_optimization_level=0`, unless
XLA_FLAGS already sets it): the same HLO, the same results to the tests' tolerances (the fixed-seed
number tests pass either way), compiled faster (test_sigkill_and_resume: 173 s -> 129 s).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from jaxmob.core.paths import shared_data_dir

CACHE_ROOT = Path(tempfile.gettempdir()) / "jaxmob-test-xla-cache"


def pytest_configure(config):
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:  # read when the backend starts, here and in subprocesses
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # the user's own cache
        return
    CACHE_ROOT.mkdir(exist_ok=True)
    for old in CACHE_ROOT.iterdir():  # earlier sessions' caches
        if time.time() - old.stat().st_mtime > 6 * 3600:
            shutil.rmtree(old, ignore_errors=True)
    cache = CACHE_ROOT / (os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)  # this process (read when jax loads) and its subprocesses
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_compilation_cache_dir", str(cache))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder ../shared/data is absent (set JAXMOB_SHARED_DATA to point at it)")
    return path
