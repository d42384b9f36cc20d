"""Inference runtime: Zero-DCE and Zero-DCE++ (scale 1 and 12), JAX vs peers.

    python -m benchmarks.infer [--vs-torch] [--vs-onnxruntime] [--quick]
                               [--plan full|peers|strongest]

full (default): sizes 256x256, 512x512, 1200x900 (the paper's), 1920x1080,
3840x2160; batch 1 and 4 (4 at the two smaller sizes); float32 and bfloat16.
peers: 256x256, 1200x900 and 1920x1080 at batch 1 and 4, float32 only (the
comparison with PyTorch and onnxruntime), written as infer_peers.json/png;
PyTorch runs with flush-denormal only (with the official weights' denormals
kept it is many times slower on x86 CPUs: infer_peers.json has both).
strongest: 256x256, 1200x900 and 1920x1080 at batch 1 against every PyTorch mode
(eager NCHW, channels_last, torch.compile; flush-denormal) and onnxruntime,
written as infer_strongest.json/png.
Median of repeated runs after compilation (compile time reported apart).
Writes OUT/infer.json and OUT/infer.png (full plan).
"""

import sys

from benchmarks import _common

from benchmarks import harness as bench


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--plan", choices=("full", "peers", "strongest"),
                  default="full")
  args = ap.parse_args(argv)
  if args.quick:
    plan = [dict(sizes=[(24, 36)], batches=[1], dtypes=["float32"])]
    args.repeats = 1
  elif args.plan == "strongest":
    plan = [dict(sizes=[(256, 256), (900, 1200), (1080, 1920)],
                 batches=[1], dtypes=["float32"], torch_flush_modes=(True,))]
  elif args.plan == "peers":
    plan = [dict(sizes=[(256, 256), (900, 1200), (1080, 1920)],
                 batches=[1, 4], dtypes=["float32"],
                 torch_flush_modes=(True,))]
  else:
    plan = [dict(sizes=[(256, 256), (512, 512)], batches=[1, 4],
                 dtypes=["float32", "bfloat16"]),
            dict(sizes=[(900, 1200), (1080, 1920), (2160, 3840)],
                 batches=[1], dtypes=["float32", "bfloat16"])]
  records = []
  for p in plan:
    records += bench.run(tasks=["infer"], vs_torch=args.vs_torch,
                         vs_onnxruntime=args.vs_onnxruntime,
                         repeats=args.repeats, shared=args.shared, **p)
  name = ("infer" if args.quick or args.plan == "full"
          else f"infer_{args.plan}")
  _common.finish(records, args.out, name, "zerodce-jax inference")
  return 0


if __name__ == "__main__":
  sys.exit(main())
