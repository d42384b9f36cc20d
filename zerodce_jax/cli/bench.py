"""``zerodce bench``: a thin entry point to ``benchmarks.harness`` (a source
checkout's benchmarks; they are not installed with the package)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from zerodce_jax.cli._common import fail, set_cpu_devices

PROG = "zerodce bench"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "bench", help="time inference and training, optionally vs PyTorch "
      "(source checkout)",
      description=(
          "Time Zero-DCE / Zero-DCE++ (median of --repeats runs after "
          "compilation, block_until_ready; compile time apart) and write "
          "JSON records (model, framework, task, height, width, batch, "
          "dtype, device, threads, median_s, min_s, compile_s, ...). "
          "--vs-torch times the official model re-written in PyTorch on the "
          "same inputs and thread count, with and without "
          "torch.set_flush_denormal(True); --vs-onnxruntime times the same "
          "weights exported to ONNX (zerodce export) in onnxruntime. Ratios "
          "are against the fastest peer. Runs the benchmarks package of a "
          "source checkout (pip install -e .)."))
  p.add_argument("--models", default="zerodce,zerodce++")
  p.add_argument("--sizes", default="1200x900",
                 help="WIDTHxHEIGHT list (default 1200x900, the paper's)")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--train-batch", type=int, default=8)
  p.add_argument("--devices", type=int, default=0,
                 help="train step: data-parallel devices, as `zerodce "
                 "train --cpu-devices` (default 0: what `zerodce train` "
                 "uses; one device is timed too)")
  p.add_argument("--dtype", default="float32",
                 help="float32, bfloat16 or both, comma-separated")
  p.add_argument("--tasks", default="infer",
                 help="infer, train_step, roofline (comma-separated)")
  p.add_argument("--scale-factors", default="1,12",
                 help="Zero-DCE++ scale factors (default 1,12)")
  p.add_argument("--vs-torch", action="store_true")
  p.add_argument("--torch-modes", default="eager,channels_last,compile",
                 help="PyTorch modes with --vs-torch, comma-separated "
                 "(default eager,channels_last,compile; torch.compile "
                 "compiles first, its time reported apart: minutes for a "
                 "train step on a small CPU)")
  p.add_argument("--vs-onnxruntime", action="store_true",
                 help="also time onnxruntime (needs the export extra)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--shared", default=None,
                 help="folder with weights/ (official weights for torch; "
                 "default: ../shared beside the checkout, or "
                 "$ZERODCE_SHARED)")
  p.add_argument("--json", required=True, help="output JSON path")
  p.set_defaults(func=run)


def checkout_benchmarks():
  """``benchmarks.harness`` of the source checkout this package runs from,
  or None (an installed wheel has no benchmarks)."""
  try:
    return importlib.import_module("benchmarks.harness")
  except ImportError:
    pass
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  if not os.path.isfile(os.path.join(root, "benchmarks", "harness.py")):
    return None
  sys.path.insert(0, root)
  return importlib.import_module("benchmarks.harness")


def run(args: argparse.Namespace) -> int:
  if "train_step" in args.tasks.split(","):
    # as `zerodce train` runs by default (on a CPU: one device per core)
    set_cpu_devices(args.devices, args.train_batch)
  harness = checkout_benchmarks()
  if harness is None:
    return fail(PROG, "the benchmarks live in a source checkout (git clone "
                "the project, pip install -e . there, and run zerodce bench "
                "or python -m benchmarks.infer from its root)")
  return harness.main_from_args(args)
