"""``zerodce serve``: a local web page to enhance photos interactively."""

from __future__ import annotations

import argparse

from zerodce_jax.cli._common import cache_parent, fail, scale_factor_parent

PROG = "zerodce serve"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "serve", help="a local web page to enhance photos interactively",
      parents=[scale_factor_parent(), cache_parent()],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Serve a web page on this computer: drop photos on it, compare "
          "before and after, set the model, strength, exposure and "
          "denoising, and download the results (one image, or a zip) as "
          "`zerodce enhance` writes them: same format, bit depth, grey and "
          "alpha unless another format is picked. Previews are computed on "
          "the photo down-scaled to about one megapixel; downloads at full "
          "resolution. Uploads and results live in a private temporary "
          "folder, removed when the server stops (Ctrl+C).\n\n"
          "examples:\n"
          "  zerodce serve                       # http://127.0.0.1:8765/\n"
          "  zerodce serve --weights run/        # also offer a trained "
          "model\n"
          "  zerodce serve --port 0              # any free port"))
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1: this "
                 "computer only; 0.0.0.0 lets anyone on your network in)")
  p.add_argument("--port", type=int, default=8765,
                 help="port (default 8765; 0: any free one)")
  p.add_argument("--weights", default=None,
                 help="also offer this model (a weights file from `zerodce "
                 "convert` / training, or a training workdir), chosen by "
                 "default; the bundled zerodce-default and "
                 "zerodce-pp-default are always offered")
  p.add_argument("--max-upload-mb", type=float, default=200,
                 help="largest file accepted, in MiB (default 200)")
  p.add_argument("--max-image-megapixels", type=float, default=50,
                 help="largest image accepted, in megapixels (default 50)")
  p.add_argument("--allow-host", action="append", default=[],
                 metavar="NAME",
                 help="another host name the page may be reached by "
                 "(repeatable; IP addresses, localhost and this machine's "
                 "name are always accepted)")
  p.add_argument("--log", action="store_true",
                 help="print one line per request")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  if not 0 <= args.port <= 65535:
    return fail(PROG, f"--port must be in 0..65535, got {args.port}")
  if args.max_upload_mb <= 0 or args.max_image_megapixels <= 0:
    return fail(PROG, "--max-upload-mb and --max-image-megapixels must be "
                "positive")
  from zerodce_jax.apps import serve  # noqa: PLC0415 - loads JAX
  from zerodce_jax.formats import params_io  # noqa: PLC0415
  limits = serve.Limits(
      max_upload_bytes=int(args.max_upload_mb * 2**20),
      max_pixels=int(args.max_image_megapixels * 1e6))
  try:
    engine = serve.Engine(weights=args.weights,
                          scale_factor=args.scale_factor, limits=limits)
  except params_io.WeightsError as e:
    return fail(PROG, str(e))
  try:
    srv = serve.make_server(engine, args.host, args.port,
                            allowed_hosts=tuple(args.allow_host),
                            log=args.log)
  except OSError as e:
    engine.close()
    return fail(PROG, f"cannot listen on {args.host}:{args.port} "
                f"({e.strerror or e})")
  if not srv.loopback_only:
    print(f"{PROG}: listening on {args.host}: anyone who can reach this "
          "computer on the network can use the page")
  serve.serve_forever(srv, announce=lambda m: print(m, flush=True))
  return 0
