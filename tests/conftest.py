"""Shared test set-up: fake CPU devices, the ../shared fixture, transforms."""

import os

# Four fake CPU devices, before JAX initialises (multi-device tests need them).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

from benchmarks._common import shared_dir  # noqa: E402

SHARED = shared_dir()


@pytest.fixture(scope="session")
def shared() -> pathlib.Path:
  """The read-only ../shared folder; skips the test when it is absent."""
  if not (SHARED / "README.md").is_file():
    pytest.skip(f"reference material not found at {SHARED} (../shared beside "
                "the project root, or set ZERODCE_SHARED): equivalence checks "
                "against the official model are skipped")
  return SHARED


@pytest.fixture(scope="session")
def official_zerodce(shared):
  """Converted official Zero-DCE params and arch (never written to the repo)."""
  from zerodce_jax.formats import convert
  return convert.convert_official(
      str(shared / "weights" / "zerodce_official_epoch99.pth"),
      arch="zerodce")


@pytest.fixture(scope="session")
def official_zerodce_pp(shared):
  from zerodce_jax.formats import convert
  return convert.convert_official(
      str(shared / "weights" / "zerodce_pp_official_epoch99.pth"),
      arch="zerodce++")
