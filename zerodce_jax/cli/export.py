"""``zerodce export``: the model as an ONNX or StableHLO file."""

from __future__ import annotations

import argparse
import os

from zerodce_jax.cli._common import fail, weights_parent

PROG = "zerodce export"
FORMATS = ("onnx", "stablehlo")
DTYPES = ("float32", "float16", "bfloat16")


def add_parser(sub) -> None:
  p = sub.add_parser(
      "export", help="write the model as an ONNX or StableHLO file",
      parents=[weights_parent("zerodce-default", "bundled model name, "
                              "weights file or training run (default: "
                              "zerodce-default)")],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Export weights (bundled name, weights file or training run) as a "
          "file that runs without this package.\n\n"
          "The exported function takes an RGB batch 'image' [N, H, W, 3] "
          "(NHWC), float32 in [0, 1], and returns 'enhanced' [N, H, W, 3] "
          "in [0, 1], curve iterations included (and 'maps' [N, H, W, 3n], "
          "the curve maps, with --with-maps). N, H and W are dynamic unless "
          "--batch/--height/--width fix them. Zero-DCE++ files down- and "
          "up-scale inside the graph (--scale-factor, default 12).\n\n"
          "  onnx       opset 17, standard ops only (Conv, Relu, Tanh, "
          "Concat, Mul, Add, Sub,\n"
          "             Resize, Transpose, Slice, Shape, Cast); metadata "
          "names the architecture,\n"
          "             scale factor, source weights and version. Needs "
          "pip install 'zerodce-jax[export]'.\n"
          "  stablehlo  jax.export serialisation for cpu, cuda and tpu; load "
          "it with\n"
          "             jax.export.deserialize(open(F, 'rb').read()).call(x)"
          "\n\nThe file is written atomically: a failed export leaves "
          "nothing at -o.\n\n"
          "examples:\n"
          "  zerodce export --format onnx -o zerodce.onnx\n"
          "  zerodce export --weights official_pp.msgpack --format onnx "
          "--dtype float16 -o pp16.onnx\n"
          "  zerodce enhance photos/ --runtime onnx --weights zerodce.onnx "
          "-o out/"))
  p.add_argument("--format", required=True, choices=FORMATS,
                 help="onnx or stablehlo")
  p.add_argument("-o", "--output", required=True, help="file to write")
  p.add_argument("--dtype", default="float32", choices=DTYPES,
                 help="float32 (default) or float16; stablehlo also "
                 "bfloat16")
  p.add_argument("--height", type=int, help="fixed input height "
                 "(default: dynamic)")
  p.add_argument("--width", type=int, help="fixed input width "
                 "(default: dynamic)")
  p.add_argument("--batch", type=int, help="fixed batch size "
                 "(default: dynamic)")
  p.add_argument("--scale-factor", type=int, default=None,
                 help="Zero-DCE++: curve estimation on the input down-scaled "
                 "by this factor, inside the graph (default 12)")
  p.add_argument("--with-maps", action="store_true",
                 help="also output the curve maps")
  p.add_argument("--strength", type=float, default=1.0, metavar="S",
                 help="bake this curve strength into the file, highlights "
                 "protected, as `zerodce enhance --strength S` (default 1: "
                 "the model). --exposure and --denoise search each image "
                 "and are not exported")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from zerodce_jax.formats import export, params_io, weights  # noqa: PLC0415
  fmt = args.format
  try:
    params, arch, source = weights.load_weights(args.weights)
  except params_io.WeightsError as e:
    return fail(PROG, str(e))
  sf = args.scale_factor
  if sf is None:
    sf = 12 if arch["separable"] else 1
  options = dict(scale_factor=sf, dtype=args.dtype, height=args.height,
                 width=args.width, batch=args.batch, with_maps=args.with_maps,
                 strength=args.strength)
  if os.path.abspath(args.output) == os.path.abspath(args.weights):
    return fail(PROG, "refusing to overwrite the weights file")
  try:
    if fmt == "onnx":
      data = export.export_onnx(params, arch, source=f"{args.weights}: "
                                f"{source}", **options)
    else:
      data = export.export_stablehlo(params, arch, **options)
  except ImportError as e:
    return fail(PROG, f"needs the export extra (pip install "
                f"'zerodce-jax[export]'): {e}")
  except export.ExportError as e:
    return fail(PROG, str(e))
  try:
    export.write_atomic(args.output, data)
  except OSError as e:
    return fail(PROG, f"cannot write {args.output}: {e}")
  kind = "zerodce++" if arch["separable"] else "zerodce"
  dims = "x".join(str(v) if v else n for n, v in
                  (("N", args.batch), ("H", args.height), ("W", args.width)))
  print(f"{args.output}: {fmt}, {kind} (depth {arch['depth']}, width "
        f"{arch['width']}, {arch['iterations']} iterations"
        + (f", scale factor {sf}" if sf != 1 else "") + f"), {args.dtype}, "
        f"input {dims}x3 NHWC RGB in [0, 1], {len(data):,} bytes")
  return 0
