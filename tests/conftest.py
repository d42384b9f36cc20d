"""Shared test set-up: fake CPU devices, the ../shared fixture, transforms."""

import atexit
import os
import shutil
import tempfile

# Four fake CPU devices, before JAX initialises (multi-device tests need them).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The memory probe's cache (apps.enhance.bytes_per_pixel) and XLA's
# compilation cache in private folders, removed at exit. The compilation
# cache is shared with the processes the tests start (CLI runs, restarts
# after SIGKILL): a program the session has compiled once loads from disk.
# (pytest-xdist's workers inherit the folders of the process that made them;
# that process removes them.)
if "ZERODCE_TEST_PRIVATE" not in os.environ:
  os.environ["ZERODCE_TEST_PRIVATE"] = tempfile.mkdtemp(prefix="zerodce-test-")
  atexit.register(shutil.rmtree, os.environ["ZERODCE_TEST_PRIVATE"],
                  ignore_errors=True)
_PRIVATE = os.environ["ZERODCE_TEST_PRIVATE"]
os.environ.setdefault("ZERODCE_CACHE_DIR", os.path.join(_PRIVATE, "probe"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(_PRIVATE, "xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

from _support import STRICT  # noqa: E402
from benchmarks._common import shared_dir  # noqa: E402

SHARED = shared_dir()


def pytest_addoption(parser):
  parser.addoption(
      "--full", action="store_true",
      help="the complete checks: every official test image through ONNX, "
      "12 SIGKILLs of a training run, tests marked `full` (the default run, "
      "as CI, takes subsets)")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--full"):
    return
  skip = pytest.mark.skip(reason="part of the complete run: pytest --full")
  for item in items:
    if "full" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def full(request) -> bool:
  """Whether this is the complete run (``pytest --full``)."""
  return request.config.getoption("--full")


@pytest.fixture(scope="session")
def shared() -> pathlib.Path:
  """The read-only ../shared folder; skips the test when it is absent (fails
  under ``ZERODCE_STRICT=1``, as in CI)."""
  if not (SHARED / "README.md").is_file():
    why = (f"reference material not found at {SHARED} (../shared beside "
           "the project root, or set ZERODCE_SHARED): equivalence checks "
           "against the official model are skipped")
    (pytest.fail if STRICT else pytest.skip)(why)
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
