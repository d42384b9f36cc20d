"""``zerodce train``: train a model from a config file."""

from __future__ import annotations

import argparse

from zerodce_jax.cli._common import fail, progress_parent, set_cpu_devices

PROG = "zerodce train"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "train", help="train a model from a config file",
      parents=[progress_parent()],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Train Zero-DCE / Zero-DCE++ with a config file from configs/.\n\n"
          "Any config field can be overridden: --config.FIELD=VALUE (typed "
          "like the field; unknown fields are errors). Running the same "
          "command on an existing --workdir resumes from its last complete "
          "checkpoint and ends with exactly the params of an uninterrupted "
          "run. Data-parallel over all devices (shard_map; "
          "--config.parallel=pmap for jax.pmap); "
          "--config.data.pipeline=device makes the batches on the "
          "accelerator.\n\n"
          "examples:\n"
          "  zerodce train --config configs/smoke.py --workdir /tmp/smoke\n"
          "  zerodce train --config configs/zerodce_official.py --workdir "
          "runs/a \\\n      --config.data.path=../shared/train_images "
          "--config.num_steps=2000\n"
          "  zerodce train --config configs/ablation_loss.py:no_col "
          "--workdir runs/no_col --config.data.path=DATA"))
  add_config_args(p)
  p.add_argument("--multihost", action="store_true",
                 help="call jax.distributed.initialize() first (one process "
                 "per host, found from the cluster's environment: TPU pods, "
                 "SLURM, ...); every process reads the training set and "
                 "feeds its slice of each global batch")
  p.add_argument("--coordinator", metavar="HOST:PORT",
                 help="multi-host without a cluster manager: the address of "
                 "process 0 (with --num-processes and --process-id)")
  p.add_argument("--num-processes", type=int, help="with --coordinator")
  p.add_argument("--process-id", type=int, help="with --coordinator")
  p.set_defaults(func=run, takes_overrides=True)


def add_config_args(p: argparse.ArgumentParser) -> None:
  """``--config``, ``--workdir`` and ``--cpu-devices`` (train and sweep)."""
  p.add_argument("--config", required=True,
                 help="config file, optionally with an argument: FILE[:ARG]")
  p.add_argument("--workdir", required=True,
                 help="run folder: checkpoints, metrics, samples, weights")
  p.add_argument("--cpu-devices", type=int, default=0,
                 help="on CPU, split the cores into this many data-parallel "
                 "devices (default 0: one per core, capped to a divisor of "
                 "the batch); ignored when XLA_FLAGS sets the count")


def load_config(prog: str, args: argparse.Namespace):
  """``(config, None)`` or ``(None, exit status)`` after one error line."""
  from zerodce_jax.training import config_utils  # noqa: PLC0415
  try:
    overrides = config_utils.parse_override_args(args.overrides)
    config = config_utils.load_config(args.config)
    config_utils.apply_overrides(config, overrides)
  except (FileNotFoundError, KeyError, ValueError) as e:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    return None, fail(prog, str(msg))
  return config, None


def init_distributed(prog: str, args: argparse.Namespace) -> int | None:
  """``jax.distributed.initialize`` as the flags say; an exit status on a
  bad combination."""
  if args.coordinator and (args.num_processes is None
                           or args.process_id is None):
    return fail(prog, "--coordinator needs --num-processes and --process-id")
  if args.multihost or args.coordinator:
    import jax  # noqa: PLC0415
    # CPU devices of several processes talk through gloo (no effect on the
    # GPU/TPU collectives).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kw = {}
    if args.coordinator:
      kw = dict(coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id)
    jax.distributed.initialize(**kw)
  return None


def run(args: argparse.Namespace) -> int:
  config, code = load_config(PROG, args)
  if config is None:
    return code
  set_cpu_devices(args.cpu_devices, config.batch_size)
  code = init_distributed(PROG, args)
  if code is not None:
    return code
  from zerodce_jax.formats import checkpoints  # noqa: PLC0415
  from zerodce_jax.training import loop  # noqa: PLC0415
  try:
    loop.train(config, args.workdir, progress=not args.no_progress)
  except (FileNotFoundError, checkpoints.CheckpointError,
          FloatingPointError) as e:
    return fail(PROG, str(e), 1)
  except KeyboardInterrupt:
    return fail(PROG, "interrupted; resume by running the same command", 130)
  print(f"done: {args.workdir}/weights.msgpack "
        f"(zerodce enhance --weights {args.workdir}/weights.msgpack ...)")
  return 0
