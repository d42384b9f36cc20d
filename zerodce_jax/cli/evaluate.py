"""``zerodce eval``: score a model on a paired or unpaired test set."""

from __future__ import annotations

import argparse
import dataclasses
import os

from zerodce_jax.cli._common import (controls_from_args, controls_parent,
                                     fail, load_enhancer, scale_factor_parent,
                                     weights_parent)

PROG = "zerodce eval"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "eval", help="score a model on a paired or unpaired test set",
      parents=[weights_parent("zerodce-default", "bundled name, weights file "
                              "or training workdir (default: "
                              "zerodce-default)"), scale_factor_parent(),
               controls_parent()],
      description=(
          "Enhance every image of a test set and report the papers' "
          "figures. Paired (--low and --high, matched by relative path, "
          "extension ignored): PSNR, SSIM, MAE on 0-255. Unpaired "
          "(--low only, e.g. DICM, LIME, MEF, NPE, VV): mean brightness and "
          "LOE (lightness order error). Or a dataset built with `zerodce "
          "data build`: --dataset tfds:lol (paired: LOL, SICE; split test "
          "unless tfds:NAME:SPLIT) --data-dir DIR. Prints a table; "
          "--json/--csv save it."))
  p.add_argument("--low", help="folder of low-light inputs")
  p.add_argument("--high", help="folder of references (paired sets)")
  p.add_argument("--dataset", help="tfds:NAME[:SPLIT] instead of folders "
                 "(lol, sice, dicm, lime, mef, npe, vv, dark_face)")
  p.add_argument("--data-dir", help="TFDS data_dir of --dataset")
  p.add_argument("--ssim", choices=("paper", "gaussian", "both"),
                 default="both",
                 help="SSIM protocol of paired sets: paper = scikit-image's "
                 "default (7x7 uniform window, per channel; the protocol "
                 "of the quoted LOL figures, column ssim_paper), gaussian "
                 "= dm-pix (11x11 Gaussian window, sigma 1.5; column ssim), "
                 "both (default)")
  p.add_argument("--json", help="write results as JSON here")
  p.add_argument("--csv", help="write per-image results as CSV here")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from zerodce_jax.apps import evaluate  # noqa: PLC0415
  from zerodce_jax.formats import image_io  # noqa: PLC0415
  controls, err = controls_from_args(args, args.weights)
  if err:
    return fail(PROG, err)
  enhancer, err = load_enhancer(args.weights, args.scale_factor,
                                controls=controls)
  if err:
    return fail(PROG, err)
  if (args.low is None) == (args.dataset is None):
    return fail(PROG, "give --low FOLDER [--high FOLDER] or --dataset "
                "tfds:NAME[:SPLIT] --data-dir DIR")
  try:
    if args.dataset:
      if not args.dataset.startswith("tfds:") or not args.data_dir:
        raise evaluate.EvalError(
            f"--dataset wants tfds:NAME[:SPLIT] and --data-dir (where "
            f"`zerodce data build NAME` wrote it), got {args.dataset!r}")
      name, _, split = args.dataset[len("tfds:"):].partition(":")
      paired, examples = evaluate.tfds_examples(
          name, data_dir=args.data_dir, split=split or "test")
      rows = (evaluate.score_paired(enhancer, examples, ssim=args.ssim)
              if paired else evaluate.score_unpaired(enhancer, examples))
    elif args.high:
      pairs = evaluate.match_pairs(args.low, args.high)
      rows = evaluate.evaluate_paired(enhancer, pairs, ssim=args.ssim)
    else:
      paths = [(os.path.relpath(p, args.low), p)
               for p in image_io.list_images(args.low)]
      rows = evaluate.evaluate_unpaired(enhancer, paths)
  except (evaluate.EvalError, image_io.ImageError, FileNotFoundError,
          ValueError) as e:
    return fail(PROG, str(e))
  summary = evaluate.summarise(rows)
  print(evaluate.format_table(rows, summary))
  evaluate.write_results(rows, summary, json_path=args.json,
                         csv_path=args.csv,
                         meta={"weights": args.weights, "low": args.low,
                               "high": args.high, "dataset": args.dataset,
                               "scale_factor": args.scale_factor,
                               "ssim": args.ssim,
                               "controls": dataclasses.asdict(controls)})
  return 0
