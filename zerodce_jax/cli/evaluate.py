"""``zerodce eval``: score a model on a paired or unpaired test set."""

from __future__ import annotations

import argparse
import dataclasses
import os

from zerodce_jax.cli._common import (cache_parent, controls_from_args,
                                     controls_parent,
                                     fail, load_enhancer, scale_factor_parent,
                                     weights_parent)

PROG = "zerodce eval"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "eval", help="score a model on a paired or unpaired test set",
      parents=[weights_parent("zerodce-default", "bundled name, weights file "
                              "or training workdir (default: "
                              "zerodce-default)"), scale_factor_parent(),
               controls_parent(), cache_parent()],
      description=(
          "Enhance every image of a test set and report the papers' "
          "figures. Paired (--low and --high, matched by relative path, "
          "extension ignored): PSNR, SSIM, MAE on 0-255. Unpaired "
          "(--low only, e.g. DICM, LIME, MEF, NPE, VV): mean brightness and "
          "LOE (lightness order error). Or a dataset built with `zerodce "
          "data build`: --dataset tfds:lol (paired: LOL, SICE; split test "
          "unless tfds:NAME:SPLIT) --data-dir DIR. Faces (--faces, the "
          "papers' high-level test): a face detector on the inputs and on "
          "the outputs of a set in the DARK FACE layout (--low DIR with "
          "image/NAME.png and label/NAME.txt, or --dataset tfds:dark_face), "
          "AP at IoU 0.5 and recall for both; needs the faces extra. "
          "Prints a table; --json/--csv save it."))
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
  p.add_argument("--faces", action="store_true",
                 help="detect faces (CenterFace) before and after "
                 "enhancement and score them against the label boxes")
  p.add_argument("--face-threshold", type=float, metavar="T",
                 help="score at which --faces reads recall and counts "
                 "(default: the detector's own, see the docs)")
  p.add_argument("--json", help="write results as JSON here")
  p.add_argument("--csv", help="write per-image results as CSV here")
  p.set_defaults(func=run)


def _dataset(args, evaluate):
  """``(name, split)`` of ``--dataset tfds:NAME[:SPLIT]``."""
  if not args.dataset.startswith("tfds:") or not args.data_dir:
    raise evaluate.EvalError(
        f"--dataset wants tfds:NAME[:SPLIT] and --data-dir (where "
        f"`zerodce data build NAME` wrote it), got {args.dataset!r}")
  name, _, split = args.dataset[len("tfds:"):].partition(":")
  # dark_face has one split, train; the test sets have test
  return name, split or ("train" if name == "dark_face" else "test")


def run(args: argparse.Namespace) -> int:
  from zerodce_jax.apps import evaluate  # noqa: PLC0415
  from zerodce_jax.formats import image_io  # noqa: PLC0415
  controls, err = controls_from_args(args, args.weights)
  if err:
    return fail(PROG, err)
  if (args.low is None) == (args.dataset is None):
    return fail(PROG, "give --low FOLDER [--high FOLDER] or --dataset "
                "tfds:NAME[:SPLIT] --data-dir DIR")
  if args.faces:
    return _run_faces(args, controls)
  enhancer, err = load_enhancer(args.weights, args.scale_factor,
                                controls=controls, map_scale=args.map_scale)
  if err:
    return fail(PROG, err)
  try:
    if args.dataset:
      name, split = _dataset(args, evaluate)
      paired, examples = evaluate.tfds_examples(
          name, data_dir=args.data_dir, split=split)
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


def _run_faces(args: argparse.Namespace, controls) -> int:
  """``--faces``: detection before and after, AP and recall."""
  from zerodce_jax.apps import evaluate, faces  # noqa: PLC0415
  from zerodce_jax.formats import face_labels, image_io  # noqa: PLC0415
  if args.high:
    return fail(PROG, "--faces reads the boxes of label/, not --high")
  threshold = (faces.SCORE_THRESHOLD if args.face_threshold is None
               else args.face_threshold)
  if not 0 < threshold < 1:
    return fail(PROG, f"--face-threshold wants a score in (0, 1), got "
                f"{threshold:g}")
  try:
    if args.dataset:
      name, split = _dataset(args, evaluate)
      examples = faces.tfds_face_examples(name, data_dir=args.data_dir,
                                          split=split)
    else:
      files = faces.dark_face_files(args.low)
      faces.check_labels(files)
      examples = faces.read_examples(files)
    detector = faces.CenterFace()
  except (faces.FaceError, evaluate.EvalError, FileNotFoundError) as e:
    return fail(PROG, str(e))
  enhancer, err = load_enhancer(args.weights, args.scale_factor,
                                controls=controls, map_scale=args.map_scale)
  if err:
    return fail(PROG, err)
  try:
    rows, summary = faces.evaluate_faces(enhancer, examples,
                                         detector=detector,
                                         score_threshold=threshold)
  except (faces.FaceError, face_labels.LabelError, image_io.ImageError,
          FileNotFoundError) as e:
    return fail(PROG, str(e))
  print(evaluate.format_table(rows, summary))
  print(f"AP@0.5 raw {summary['ap_raw']:.4f}, enhanced "
        f"{summary['ap_enhanced']:.4f}; recall at score {threshold:g}: raw "
        f"{summary['recall_raw']:.4f}, enhanced "
        f"{summary['recall_enhanced']:.4f} ({summary['faces']} faces)")
  evaluate.write_results(rows, summary, json_path=args.json,
                         csv_path=args.csv,
                         meta={"weights": args.weights, "low": args.low,
                               "dataset": args.dataset, "faces": True,
                               "scale_factor": args.scale_factor,
                               "detector": "CenterFace",
                               "detector_sha256": faces.CENTERFACE_SHA256,
                               "score_threshold": threshold,
                               "iou_threshold": faces.IOU_THRESHOLD,
                               "detection_floor": faces.DETECTION_FLOOR,
                               "controls": dataclasses.asdict(controls)})
  return 0
