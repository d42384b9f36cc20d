"""The ``zerodce`` command: one module per verb, each a thin caller of the
library. Building the parser imports no JAX, so ``zerodce --help`` is
instant; a verb imports what it needs when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from zerodce_jax.cli import bench, convert, data, enhance, evaluate, export
from zerodce_jax.cli import sweep, train
from zerodce_jax.cli import serve

__all__ = ["main", "build_parser"]

VERBS = (enhance, convert, export, train, sweep, evaluate, bench, data, serve)


class _Parser(argparse.ArgumentParser):
  """Bad arguments are one line (``zerodce enhance: argument --x: ...``)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``zerodce`` and its verbs."""
  parser = _Parser(
      prog="zerodce",
      description="Zero-DCE / Zero-DCE++ low-light image enhancement in "
      "JAX.")
  parser.add_argument("--version", action="version",
                      version=f"zerodce-jax {_version()}")
  sub = parser.add_subparsers(dest="command", required=True,
                              metavar="COMMAND", parser_class=_Parser)
  for verb in VERBS:
    verb.add_parser(sub)
  return parser


def _version() -> str:
  import zerodce_jax  # noqa: PLC0415
  return zerodce_jax.__version__


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``zerodce`` console script; returns the exit
  status (argument errors included, as 2)."""
  parser = build_parser()
  try:
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "takes_overrides", False):
      args.overrides = rest
    elif rest:
      parser.error(f"unrecognized arguments: {' '.join(rest)}")
  except SystemExit as e:
    return int(e.code or 0) if not isinstance(e.code, str) else 2
  if getattr(args, "no_cache", False):
    from zerodce_jax.apps import compile_cache  # noqa: PLC0415 - no JAX
    os.environ[compile_cache.NO_CACHE_ENV] = "1"
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
