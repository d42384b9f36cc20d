"""``zerodce sweep``: train many variants of a config in one compiled program;
``zerodce sweep report``: evaluate them side by side."""

from __future__ import annotations

import argparse
import math

from zerodce_jax.cli._common import (fail, progress_parent,
                                     scale_factor_parent, set_cpu_devices)
from zerodce_jax.cli.train import init_distributed, load_config

PROG = "zerodce sweep"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "sweep", help="train many variants of a config at once (vmap)",
      parents=[progress_parent()], add_help=False,
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Train the variants of a config together: the config's "
          "sweep.variants list, times --seeds, times every --grid "
          "(cartesian). Variants that differ only in the seed, loss "
          "weights, exposure level, learning rate, weight decay or clip "
          "norm train in ONE jitted step (jax.vmap over their stacked "
          "states, the variant axis split over the devices); other "
          "differences (architecture, image size, batch, ...) form groups "
          "trained one after another, and may vary only through the "
          "config's list. Writes W/<variant>/ (weights.msgpack, metrics, "
          "TensorBoard, samples), W/variants.json and one checkpoint per "
          "group; running the same command again resumes exactly. A "
          "variant whose loss turns non-finite stops alone. Overrides: "
          "--config.FIELD=VALUE (the = form).\n\n"
          "examples:\n"
          "  zerodce sweep --config configs/sweep_smoke.py --workdir "
          "/tmp/sweep\n"
          "  zerodce sweep --config configs/sweep_loss_ablation.py "
          "--workdir runs/loss \\\n      --config.data.path=DATA\n"
          "  zerodce sweep --config configs/smoke.py --workdir /tmp/s "
          "--seeds 0,1 \\\n      --grid optim.learning_rate=1e-3,3e-3\n"
          "  zerodce sweep report /tmp/sweep --paired LOW HIGH\n\n"
          "zerodce sweep report WORKDIR [--paired LOW HIGH] [--images DIR]: "
          "evaluate every variant (zerodce sweep report --help)."))
  # -h here is read by run(): `zerodce sweep report --help` is the report's
  p.add_argument("-h", "--help", action="store_true",
                 help="show this help message and exit")
  p.add_argument("--config",
                 help="config file, optionally with an argument: FILE[:ARG]")
  p.add_argument("--workdir", help="sweep folder: one subfolder per variant")
  p.add_argument("--seeds", metavar="S1,S2,...",
                 help="train every variant once per seed")
  p.add_argument("--grid", action="append", default=[],
                 metavar="FIELD=V1,V2,...",
                 help="a config field and its values (repeatable: the "
                 "cartesian product); not for shape-changing fields")
  p.add_argument("--strategy", choices=("auto", "vmap", "unroll"),
                 default="auto",
                 help="how a group's variants share the step: vmap (one "
                 "batched program: GPU/TPU), unroll (one copy of the step "
                 "per variant in the same program: faster on XLA:CPU, "
                 "slower to compile) or auto (default: unroll on CPU, vmap "
                 "elsewhere)")
  p.add_argument("--cpu-devices", type=int, default=0,
                 help="on CPU, split the cores into this many devices "
                 "(default 0: one per core, capped to a divisor of the "
                 "batch); ignored when XLA_FLAGS sets the count")
  p.add_argument("--multihost", action="store_true",
                 help="call jax.distributed.initialize() first (as zerodce "
                 "train)")
  p.add_argument("--coordinator", metavar="HOST:PORT",
                 help="multi-host without a cluster manager: the address of "
                 "process 0 (with --num-processes and --process-id)")
  p.add_argument("--num-processes", type=int, help="with --coordinator")
  p.add_argument("--process-id", type=int, help="with --coordinator")
  p.set_defaults(func=run, takes_overrides=True, sweep_parser=p)


class _OneLineParser(argparse.ArgumentParser):
  """Bad arguments are one line, as the other verbs'."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def report_parser() -> argparse.ArgumentParser:
  """The arguments of ``zerodce sweep report`` (dispatched by ``run``: a
  sub-command parser would take ``--config.x=...`` values with spaces for
  its name)."""
  r = _OneLineParser(
      prog=f"{PROG} report", parents=[scale_factor_parent()],
      description=(
          "Evaluate every trained variant of a sweep as `zerodce eval` "
          "does: with --paired LOW HIGH PSNR, SSIM and MAE; with --images "
          "DIR (or, without either, the bundled sample image) brightness "
          "and LOE. Writes W/report.md, W/report.json (with each "
          "variant's final loss terms) and W/report_grid.png (input | each "
          "variant)."))
  r.add_argument("workdir", help="the sweep's --workdir")
  r.add_argument("--paired", nargs=2, metavar=("LOW", "HIGH"),
                 help="folders of low-light inputs and references")
  r.add_argument("--images", metavar="DIR",
                 help="folder of unpaired low-light images")
  r.add_argument("--grid-images", type=int, default=4,
                 help="rows of the grid PNG (default 4)")
  return r


def run(args: argparse.Namespace) -> int:
  if args.overrides[:1] == ["report"]:
    try:
      report_args = report_parser().parse_args(
          args.overrides[1:] + (["--help"] if args.help else []))
    except SystemExit as e:
      return int(e.code or 0) if not isinstance(e.code, str) else 2
    return run_report(report_args)
  if args.help:
    args.sweep_parser.print_help()
    return 0
  if not args.config or not args.workdir:
    return fail(PROG, "--config and --workdir are required (or: zerodce "
                "sweep report WORKDIR)")
  config, code = load_config(PROG, args)
  if config is None:
    return code
  from zerodce_jax.training import sweep  # noqa: PLC0415
  try:
    seeds = sweep.parse_seeds(args.seeds) if args.seeds is not None else None
    grid = sweep.parse_grid(args.grid)
    variants = sweep.expand_variants(config, seeds=seeds, grid=grid)
  except sweep.SweepError as e:
    return fail(PROG, str(e))
  batch = 0
  for v in variants:
    batch = math.gcd(batch, v.config.batch_size)
  set_cpu_devices(args.cpu_devices, batch)
  code = init_distributed(PROG, args)
  if code is not None:
    return code
  from zerodce_jax.formats import checkpoints  # noqa: PLC0415
  try:
    doc, _ = sweep.run_sweep(config, args.workdir, seeds=seeds, grid=grid,
                             strategy=args.strategy,
                             progress=not args.no_progress)
  except sweep.SweepError as e:
    return fail(PROG, str(e))
  except (FileNotFoundError, ValueError, checkpoints.CheckpointError) as e:
    return fail(PROG, str(e), 1)
  except KeyboardInterrupt:
    return fail(PROG, "interrupted; resume by running the same command", 130)
  done = [v for v in doc["variants"] if v["status"] == "done"]
  print(f"done: {len(done)} of {len(doc['variants'])} variant(s) in "
        f"{args.workdir}/variants.json (zerodce sweep report "
        f"{args.workdir})")
  return 0 if done else 1


def run_report(args: argparse.Namespace) -> int:
  from zerodce_jax.apps import evaluate, sweep_report  # noqa: PLC0415
  from zerodce_jax.formats import image_io, params_io  # noqa: PLC0415
  try:
    doc = sweep_report.report(
        args.workdir, paired=args.paired, images=args.images,
        scale_factor=args.scale_factor, grid_images=args.grid_images)
  except (sweep_report.ReportError, evaluate.EvalError, image_io.ImageError,
          params_io.WeightsError, FileNotFoundError) as e:
    return fail(f"{PROG} report", str(e))
  print(sweep_report.markdown_table(doc))
  print(f"wrote {doc['files']['md']}, {doc['files']['json']}, "
        f"{doc['files']['grid']}")
  return 0
