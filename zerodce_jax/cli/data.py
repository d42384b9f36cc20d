"""``zerodce data``: build a paper dataset (TFDS) or pack a training folder."""

from __future__ import annotations

import argparse
import sys

from zerodce_jax.cli._common import fail

PROG = "zerodce data"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "data", help="build a paper dataset (TFDS), or pack a training folder",
      description=(
          "build/layout: build one of the papers' datasets as TFDS "
          "array_record files from a folder you downloaded by hand (nothing "
          "is fetched), or print the folder layout it expects. Datasets: "
          "sice, lol, dicm, lime, mef, npe, vv, dark_face. Reading needs no "
          "TensorFlow.\n\npack SRC --out DIR: a compact copy of a training "
          "folder for a machine with little room (an accelerator lease): "
          "each image resized once to --size (Lanczos, as the official "
          "loader) and saved as JPEG --quality with full chroma."),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("action", choices=("build", "layout", "pack"))
  p.add_argument("name", help="dataset name (build/layout) or image folder "
                 "(pack)")
  p.add_argument("--out", help="pack: output folder")
  p.add_argument("--size", type=int, default=256, help="pack: side (256)")
  p.add_argument("--quality", type=int, default=90,
                 help="pack: JPEG quality (90)")
  p.add_argument("--manual-dir", help="folder holding the downloaded files")
  p.add_argument("--data-dir", help="where to write the TFDS dataset")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  if args.action == "pack":
    return _pack(args)
  try:
    from zerodce_jax.training import datasets  # noqa: PLC0415
  except ImportError as e:
    return fail(PROG, f"needs the data extra (pip install "
                f"'zerodce-jax[data]'): {e}")
  if args.name not in datasets.DATASETS:
    return fail(PROG, f"unknown dataset {args.name!r}; known: "
                f"{', '.join(datasets.DATASETS)}")
  if args.action == "layout":
    print(datasets.expected_layout(args.name))
    return 0
  if not args.manual_dir or not args.data_dir:
    return fail(f"{PROG} build", "give --manual-dir and --data-dir")
  try:
    builder = datasets.build(args.name, manual_dir=args.manual_dir,
                             data_dir=args.data_dir)
  except datasets.LayoutError as e:
    return fail(PROG, str(e))
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f"{args.name} built in {args.data_dir}: " + ", ".join(
      f"{k} {n}" for k, n in sorted(splits.items())))
  print(f"train on it: --config.data.source=tfds:{args.name} "
        f"--config.data.path={args.data_dir}")
  return 0


def _pack(args: argparse.Namespace) -> int:
  from zerodce_jax.training import input_pipeline  # noqa: PLC0415
  if not args.out:
    return fail(f"{PROG} pack", "give --out DIR")
  try:
    n, size = input_pipeline.pack_resized(
        args.name, args.out, size=args.size, quality=args.quality,
        report=lambda m: print(m, file=sys.stderr))
  except FileNotFoundError as e:
    return fail(f"{PROG} pack", str(e))
  print(f"{n} images, {args.size}x{args.size} JPEG q{args.quality}, "
        f"{size / 2**20:.1f} MiB in {args.out}; train on it with "
        f"--config.data.path={args.out} --config.data.image_size="
        f"{args.size}")
  return 0
