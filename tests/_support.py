"""Helpers for tests: optional extras that CI must not silently skip."""

import importlib
import os

import pytest

# Set by .ci/run: an extra that is missing or broken fails instead of
# skipping, and so does missing reference material.
STRICT = os.environ.get("ZERODCE_STRICT") == "1"


def optional(module: str, *, extra: str):
  """Imports ``module`` (of the ``extra`` optional dependencies); skips the
  test module when it is not installed, except under ``ZERODCE_STRICT=1``,
  where the import error is a failure."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    if STRICT:
      raise
    pytest.skip(f"needs the {extra} extra ({module}: {e})",
                allow_module_level=True)
