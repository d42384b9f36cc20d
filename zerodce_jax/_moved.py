"""Old module paths (before the layered layout) keep working for one release.

``import zerodce_jax.curves`` or ``from zerodce_jax import enhance_files``
gives the module at its new place (``zerodce_jax.core.curves``, ...) with a
``DeprecationWarning`` naming it. Benchmarking tooling left the installed
package: importing it from the old path raises an ``ImportError`` that says
where it went.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

OLD_MODULES = {
    **{m: f"zerodce_jax.core.{m}" for m in (
        "curves", "resize", "models", "losses", "metrics", "research")},
    **{m: f"zerodce_jax.formats.{m}" for m in (
        "safe_pickle", "torch_pickle", "convert", "params_io", "image_io",
        "export", "checkpoints")},
    **{m: f"zerodce_jax.training.{m}" for m in (
        "input_pipeline", "config_utils", "metric_writers", "datasets")},
    **{m: f"zerodce_jax.apps.{m}" for m in (
        "enhance", "enhance_files", "video", "evaluate", "onnx_runtime")},
}
TOOLING = {"bench": "benchmarks.harness", "accelerator":
           "benchmarks.accelerator_parts", "profiling": "benchmarks.profiling",
           "conv_candidates": "benchmarks.conv_candidates",
           "torch_reference": "benchmarks.torch_port",
           "lowering": "benchmarks.lowering"}


def _tooling_error(old: str) -> ImportError:
  return ImportError(
      f"zerodce_jax.{old} left the installed package: it is "
      f"{TOOLING[old]} in a source checkout (run benchmarks with "
      f"`python -m benchmarks.NAME` from the repository root, or `zerodce "
      f"bench`)")


class _Alias(types.ModuleType):
  """The old name of a moved module: forwards attribute reads to it."""

  def __init__(self, old: str, new: str):
    super().__init__(f"zerodce_jax.{old}")
    self.__dict__["_target"] = new

  def __getattr__(self, name):
    return getattr(importlib.import_module(self.__dict__["_target"]), name)

  def __dir__(self):
    return dir(importlib.import_module(self.__dict__["_target"]))

  def __call__(self, *args, **kwargs):
    # ``zerodce_jax.enhance`` is the function; after ``import
    # zerodce_jax.enhance`` (old scripts) the alias stands in for it.
    target = importlib.import_module(self.__dict__["_target"])
    fn = getattr(target, self.__name__.rsplit(".", 1)[1], None)
    if not callable(fn):
      raise TypeError(f"module {self.__name__!r} is not callable")
    return fn(*args, **kwargs)


def _warn(old: str, stacklevel: int) -> None:
  warnings.warn(f"zerodce_jax.{old} moved to {OLD_MODULES[old]}; the old "
                "path goes away in the next release", DeprecationWarning,
                stacklevel=stacklevel)


def old_module(old: str) -> types.ModuleType:
  """The module an old top-level name stands for (``from zerodce_jax import
  curves``)."""
  if old in TOOLING:
    raise _tooling_error(old)
  _warn(old, stacklevel=4)
  return importlib.import_module(OLD_MODULES[old])


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Answers ``import zerodce_jax.<old name>``."""

  def find_spec(self, fullname, path=None, target=None):
    pkg, _, old = fullname.partition(".")
    if pkg != "zerodce_jax" or "." in old or not (
        old in OLD_MODULES or old in TOOLING):
      return None
    return importlib.machinery.ModuleSpec(fullname, self)

  def create_module(self, spec):
    old = spec.name.split(".", 1)[1]
    if old in TOOLING:
      raise _tooling_error(old)
    _warn(old, stacklevel=6)
    return _Alias(old, OLD_MODULES[old])

  def exec_module(self, module):
    importlib.import_module(module.__dict__["_target"])


def install() -> None:
  if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
