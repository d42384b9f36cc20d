"""``zerodce enhance``: brighten image and video files, folders and globs."""

from __future__ import annotations

import argparse
import os
import sys

from zerodce_jax.cli._common import (cache_parent, controls_from_args,
                                     controls_parent,
                                     fail, load_enhancer, memory_size,
                                     progress_parent, scale_factor_parent)

PROG = "zerodce enhance"


def add_parser(sub) -> None:
  p = sub.add_parser(
      "enhance", help="brighten low-light images and videos",
      parents=[scale_factor_parent(), controls_parent(), progress_parent(),
               cache_parent()],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Enhance low-light images and videos with Zero-DCE / Zero-DCE++.\n\n"
          "Inputs are files, folders (recursive; relative paths are kept "
          "under --output) or globs. Image outputs keep each input's format, "
          "bit depth (8/16), grey/colour and alpha, unless --format is "
          "given. Videos (found by content) keep their container, size, "
          "timestamps, rotation and audio/subtitle streams; they are enhanced "
          "with the real-time Zero-DCE++ unless --weights names another "
          "model. Inputs are never overwritten. A file that cannot be read "
          "is reported and skipped; the exit status is 1 if any failed.\n\n"
          "examples:\n"
          "  zerodce enhance --sample -o out/          # bundled sample, "
          "with a before/after PNG\n"
          "  zerodce enhance photos/ -o bright/ --format png\n"
          "  zerodce enhance 'raw/*.tif' --weights official.msgpack -o out/\n"
          "  zerodce enhance dark.jpg --exposure 0.5 --denoise auto -o out/\n"
          "  zerodce enhance dark_clip.mp4 -o out/     # video, audio kept"))
  p.add_argument("inputs", nargs="*",
                 help="image or video files, folders or globs")
  p.add_argument("-o", "--output", default="enhanced",
                 help="output folder (default: enhanced)")
  p.add_argument("--weights", default=None,
                 help="bundled model name or a weights file from `zerodce "
                 "convert` / training (default: zerodce-default for images, "
                 "zerodce-pp-default, the real-time model, for videos)")
  p.add_argument("--format", choices=("png", "jpeg", "tiff", "bmp", "webp"),
                 help="output format (default: the input's)")
  p.add_argument("--suffix", default="",
                 help="appended to output file names (e.g. _enhanced)")
  p.add_argument("--compare", action="store_true",
                 help="also write NAME_compare.png: input | enhanced")
  p.add_argument("--sample", action="store_true",
                 help="enhance the bundled low-light sample (implies "
                 "--compare)")
  p.add_argument("--batch", type=int, default=8,
                 help="most images (or tiles) per compiled call (default 8; "
                 "fewer when --max-memory says so)")
  p.add_argument("--tile", type=int, default=1024,
                 help="largest tile size for large images (default 1024; "
                 "smaller when --max-memory says so)")
  p.add_argument("--max-memory", type=memory_size, default="auto",
                 metavar="SIZE",
                 help="working memory of the network per call, e.g. 1.5G, "
                 "800M, 'none' or 'auto' (default: 1.5G on a CPU, half the "
                 "accelerator's memory on a GPU/TPU); batch, tiling and tile "
                 "size are chosen to fit")
  p.add_argument("--max-megapixels", type=float, default=4.2,
                 help="images larger than this are processed in tiles, "
                 "exactly (default 4.2)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"),
                 default="float32", help="compute dtype (default float32)")
  g = p.add_argument_group(
      "video", "videos (mp4, mov, mkv, webm, avi; found by content) are "
      "enhanced frame by frame, streaming, keeping timestamps; audio and "
      "subtitles are copied untouched. Needs pip install "
      "'zerodce-jax[video]'")
  g.add_argument("--crf", type=int, default=18,
                 help="x264/VP9 quality, lower is better (default 18)")
  g.add_argument("--preset", default="medium",
                 help="x264 speed preset (default medium; faster: veryfast)")
  g.add_argument("--temporal-smoothing", type=float, metavar="A",
                 default=None,
                 help="average the curve maps over frames, m = A m_prev + "
                 "(1-A) m_new, reset at scene cuts (default 0, off; the "
                 "flicker measurements behind the default are in the video "
                 "guide)")
  g.add_argument("--video-codec", default=None,
                 help="encoder (default libx264; libvpx-vp9 for .webm; ffv1 "
                 "lossless in .mkv/.avi)")
  g.add_argument("--video-batch", type=int, default=8,
                 help="frames per compiled call (default 8)")
  p.add_argument("--runtime", choices=("jax", "onnx"), default="jax",
                 help="jax (default), or onnx: run an exported .onnx file "
                 "(--weights model.onnx) through onnxruntime on the CPU, to "
                 "check it on your photos before deploying it; scale factor "
                 "and dtype come from the file")
  p.set_defaults(func=run)


def _load_onnx_enhancer(path: str, **options):
  """(OnnxEnhancer, None) or (None, error message)."""
  if not path.endswith(".onnx") and not os.path.isfile(path):
    return None, (f"{path}: --runtime onnx takes an .onnx file from "
                  "`zerodce export --format onnx`")
  from zerodce_jax.apps import onnx_runtime  # noqa: PLC0415
  try:
    return onnx_runtime.OnnxEnhancer(path, **options), None
  except onnx_runtime.OnnxModelError as e:
    return None, str(e)


def run(args: argparse.Namespace) -> int:
  from zerodce_jax.apps import enhance_files, video  # noqa: PLC0415
  from zerodce_jax.formats import weights  # noqa: PLC0415
  inputs = list(args.inputs)
  if args.sample:
    inputs.append(weights.asset_path(weights.SAMPLE_IMAGE))
  if not inputs:
    return fail(PROG, "give image or video files, folders or globs (or "
                "--sample)")
  if args.runtime == "onnx" and not args.weights:
    return fail(PROG, "--runtime onnx needs --weights FILE.onnx (from "
                "`zerodce export --format onnx`)")
  jobs, errors = enhance_files.collect_jobs(inputs, args.output,
                                            fmt=args.format,
                                            suffix=args.suffix)
  video_jobs, image_jobs = [], []
  for j in jobs:
    (video_jobs if video.is_video(j.src) else image_jobs).append(j)
  enhancer = None
  if image_jobs or not video_jobs:
    image_weights = args.weights or weights.DEFAULT_WEIGHTS
    controls, err = controls_from_args(args, image_weights)
    if err:
      return fail(PROG, err)
    if args.runtime == "onnx":
      if not controls.plain:
        return fail(PROG, "--runtime onnx runs the exported model as it is: "
                    "no --strength/--exposure/--denoise (or bake a strength "
                    "in with `zerodce export --strength`)")
      enhancer, err = _load_onnx_enhancer(
          args.weights, tile=args.tile,
          max_pixels=int(args.max_megapixels * 1e6))
    else:
      enhancer, err = load_enhancer(
          image_weights, args.scale_factor,
          dtype=args.dtype, batch_size=args.batch, tile=args.tile,
          max_pixels=int(args.max_megapixels * 1e6),
          max_memory=args.max_memory, controls=controls,
          map_scale=args.map_scale)
    if err:
      return fail(PROG, err)
  for e in errors:
    print(f"{PROG}: {e}", file=sys.stderr)
  ok = failed = 0
  if image_jobs:
    ok, failed = enhance_files.enhance_paths(
        image_jobs, enhancer, fmt=args.format,
        compare=args.compare or args.sample, progress=not args.no_progress)
  if video_jobs:
    v_ok, v_failed = _enhance_videos(video_jobs, args)
    ok, failed = ok + v_ok, failed + v_failed
  failed += len(errors)
  print(f"{ok} enhanced into {args.output}" + (f", {failed} failed"
                                               if failed else ""))
  return 1 if failed else 0


def _enhance_videos(jobs, args) -> tuple[int, int]:
  """Enhances video jobs one by one; (n_ok, n_failed). Each problem is one
  line on stderr; a damaged input still gives what could be decoded."""
  from zerodce_jax.apps import video  # noqa: PLC0415
  from zerodce_jax.core import models  # noqa: PLC0415
  from zerodce_jax.formats import params_io, weights  # noqa: PLC0415
  why = None
  if args.runtime == "onnx":
    why = "videos run with --runtime jax"
  else:
    try:
      import av  # noqa: F401, PLC0415
    except ImportError:
      why = "a video: needs PyAV (pip install 'zerodce-jax[video]')"
  if why:
    for j in jobs:
      print(f"{PROG}: {j.src}: {why}", file=sys.stderr)
    return 0, len(jobs)
  video_weights = args.weights or weights.DEFAULT_VIDEO_WEIGHTS
  controls, err = controls_from_args(args, video_weights, video=True)
  try:
    if err:
      raise params_io.WeightsError(err)
    params, arch, _ = weights.load_weights(video_weights)
  except params_io.WeightsError as e:
    print(f"{PROG}: {e}", file=sys.stderr)
    return 0, len(jobs)
  model = models.model_from_arch(arch, dtype=args.dtype,
                                 scale_factor=args.scale_factor)
  ok = failed = 0
  for job in jobs:
    if os.path.dirname(job.dst):
      os.makedirs(os.path.dirname(job.dst), exist_ok=True)
    try:
      report = video.enhance_video(
          job.src, job.dst, model, params,
          smoothing=(video.DEFAULT_SMOOTHING if args.temporal_smoothing
                     is None else args.temporal_smoothing), crf=args.crf,
          preset=args.preset, codec=args.video_codec,
          batch_size=args.video_batch, progress=not args.no_progress,
          controls=controls)
    except video.VideoError as e:
      print(f"{PROG}: {e}", file=sys.stderr)
      failed += 1
      continue
    if report.error:
      print(f"{PROG}: {job.src}: {report.error}; the {report.frames} frames "
            f"before it are in {job.dst}", file=sys.stderr)
      failed += 1
      continue
    ok += 1
    if not args.no_progress:
      print(f"{job.src} -> {job.dst}: {report.frames} frames "
            f"{report.width}x{report.height}, {report.fps:.1f} frames/s",
            file=sys.stderr)
  return ok, failed
