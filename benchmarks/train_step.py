"""Training throughput: the official train step (as ``zerodce train`` runs
it) vs batch and devices, and vs the official PyTorch step at batch
8 x 256x256 in each mode (eager NCHW, channels_last, torch.compile), with
flush-denormal (with the official weights' denormals kept PyTorch's CPU step
is tens of times slower, never the fastest peer).

    python -m benchmarks.train_step [--vs-torch] [--quick] [--devices 1,2]
        [--batches 8,16] [--models zerodce,zerodce++]

On a CPU, devices are XLA's fake host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, set here before JAX
starts); they share the same cores. Writes OUT/train_step.json and .png.
"""

import os
import sys

from benchmarks import _common


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--devices", default="1,2",
                  help="device counts to try (default 1,2)")
  ap.add_argument("--batches", default="8,16", help="global batch sizes")
  ap.add_argument("--models", default="zerodce,zerodce++",
                  help="comma-separated (default zerodce,zerodce++)")
  ap.add_argument("--torch-modes", default="eager,channels_last,compile",
                  help="PyTorch modes with --vs-torch (default all three)")
  args = ap.parse_args(argv)
  counts = [int(d) for d in args.devices.split(",")]
  if "jax" not in sys.modules:
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_force_host_platform_device_count={max(counts)}")
  from benchmarks import harness as bench  # noqa: PLC0415
  size, batches = 256, [int(b) for b in args.batches.split(",")]
  if args.quick:
    size, batches, args.repeats = 32, [8], 1
  records = []
  for b in batches:
    records += bench.run(tasks=["train_step"],
                         model_names=args.models.split(","),
                         vs_torch=args.vs_torch and b == 8,
                         repeats=args.repeats, train_size=size,
                         train_batch=b, device_counts=counts,
                         torch_flush_modes=(True,),
                         torch_modes=args.torch_modes.split(","),
                         shared=args.shared)
  _common.finish(records, args.out, "train_step", "zerodce-jax train step")
  return 0


if __name__ == "__main__":
  sys.exit(main())
