"""``zerodce convert``: an official PyTorch snapshot -> our weights file."""

from __future__ import annotations

import argparse
import os

from zerodce_jax.cli._common import fail

PROG = "zerodce convert"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "convert",
      help="convert an official PyTorch snapshot to zerodce-jax weights",
      description=(
          "Convert an official Zero-DCE or Zero-DCE++ PyTorch snapshot "
          "(Epoch99.pth; legacy or zip format) into a zerodce-jax weights "
          "file. torch is not needed, and nothing in the file is executed. "
          "Kernels go from OIHW to HWIO, the curve sign from the official r "
          "to the paper's a = -r, and denormal floats are flushed to zero "
          "(they change no output by more than 1e-30 and slow CPUs down "
          "many times). The official weights are CC BY-NC 4.0: research use "
          "only."))
  p.add_argument("snapshot", help="official .pth file")
  p.add_argument("-o", "--output", required=True,
                 help="output weights file (e.g. zerodce_official.msgpack)")
  p.add_argument("--arch", choices=("auto", "zerodce", "zerodce++"),
                 default="auto",
                 help="expected architecture; 'auto' infers it from the file "
                 "(default: auto)")
  p.add_argument("--keep-denormals", action="store_true",
                 help="keep denormal weights as they are")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from zerodce_jax.core import models  # noqa: PLC0415
  from zerodce_jax.formats import convert, params_io, torch_pickle  # noqa: PLC0415
  arch = None if args.arch == "auto" else args.arch
  try:
    params, fields, flushed = convert.convert_official(
        args.snapshot, arch=arch, flush=not args.keep_denormals)
  except FileNotFoundError:
    return fail(PROG, f"{args.snapshot}: no such file")
  except (torch_pickle.CheckpointFormatError, ValueError, OSError) as e:
    # each message names the file; nothing in a hostile file was executed
    return fail(PROG, str(e))
  out = args.output
  if os.path.abspath(out) == os.path.abspath(args.snapshot):
    return fail(PROG, "refusing to overwrite the input file")
  if os.path.dirname(out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
  params_io.save_params(
      out, params, arch=fields,
      source=f"converted from {os.path.basename(args.snapshot)} "
      f"(official PyTorch snapshot; CC BY-NC 4.0, research use only)")
  kind = "zerodce++" if fields["separable"] else "zerodce"
  n = models.count_params(params)
  print(f"{args.snapshot} -> {out}: {kind} "
        f"(depth {fields['depth']}, width {fields['width']}, "
        f"{fields['iterations']} iterations), {n:,} parameters, "
        f"{flushed:,} denormal weights flushed to zero")
  return 0
