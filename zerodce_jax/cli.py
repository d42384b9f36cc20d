"""The ``zerodce`` command: argument parsing and calls into the library only."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

__all__ = ["main"]


def _cmd_convert(args: argparse.Namespace) -> int:
  from zerodce_jax import convert, models, params_io, torch_pickle  # noqa: PLC0415
  arch = None if args.arch == "auto" else args.arch
  try:
    params, fields, flushed = convert.convert_official(
        args.snapshot, arch=arch, flush=not args.keep_denormals)
  except FileNotFoundError:
    print(f"zerodce convert: {args.snapshot}: no such file", file=sys.stderr)
    return 2
  except (torch_pickle.CheckpointFormatError, ValueError, OSError) as e:
    # each message names the file; nothing in a hostile file was executed
    print(f"zerodce convert: {e}", file=sys.stderr)
    return 2
  out = args.output
  if os.path.abspath(out) == os.path.abspath(args.snapshot):
    print("zerodce convert: refusing to overwrite the input file",
          file=sys.stderr)
    return 2
  if os.path.dirname(out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
  params_io.save_params(
      out, params, arch=fields,
      source=f"converted from {os.path.basename(args.snapshot)} "
      f"(official PyTorch snapshot; CC BY-NC 4.0, research use only)")
  kind = "zerodce++" if fields["separable"] else "zerodce"
  n = models.count_params(params)
  print(f"{args.snapshot} -> {out}: {kind} "
        f"(depth {fields['depth']}, width {fields['width']}, "
        f"{fields['iterations']} iterations), {n:,} parameters, "
        f"{flushed:,} denormal weights flushed to zero")
  return 0


def _cmd_enhance(args: argparse.Namespace) -> int:
  from zerodce_jax import enhance_files, params_io, video  # noqa: PLC0415
  inputs = list(args.inputs)
  if args.sample:
    inputs.append(params_io.asset_path(params_io.SAMPLE_IMAGE))
  if not inputs:
    print("zerodce enhance: give image or video files, folders or globs "
          "(or --sample)", file=sys.stderr)
    return 2
  if args.runtime == "onnx" and not args.weights:
    print("zerodce enhance: --runtime onnx needs --weights FILE.onnx (from "
          "`zerodce export --format onnx`)", file=sys.stderr)
    return 2
  jobs, errors = enhance_files.collect_jobs(inputs, args.output,
                                            fmt=args.format,
                                            suffix=args.suffix)
  video_jobs, image_jobs = [], []
  for j in jobs:
    (video_jobs if video.is_video(j.src) else image_jobs).append(j)
  enhancer = None
  if image_jobs or not video_jobs:
    if args.runtime == "onnx":
      enhancer, err = _load_onnx_enhancer(
          args.weights, tile=args.tile,
          max_pixels=int(args.max_megapixels * 1e6))
    else:
      enhancer, err = _load_enhancer(
          args.weights or params_io.DEFAULT_WEIGHTS, args.scale_factor,
          dtype=args.dtype, batch_size=args.batch, tile=args.tile,
          max_pixels=int(args.max_megapixels * 1e6),
          max_memory=args.max_memory)
    if err:
      print(f"zerodce enhance: {err}", file=sys.stderr)
      return 2
  for e in errors:
    print(f"zerodce enhance: {e}", file=sys.stderr)
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
  import jax.numpy as jnp  # noqa: PLC0415
  from zerodce_jax import models, params_io, video  # noqa: PLC0415
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
      print(f"zerodce enhance: {j.src}: {why}", file=sys.stderr)
    return 0, len(jobs)
  weights = args.weights or params_io.DEFAULT_VIDEO_WEIGHTS
  try:
    params, arch, _ = params_io.load_weights(weights)
  except params_io.WeightsError as e:
    print(f"zerodce enhance: {e}", file=sys.stderr)
    return 0, len(jobs)
  model = models.DCENet(
      **arch, dtype=jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32,
      scale_factor=args.scale_factor if arch["separable"] else 1)
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
          batch_size=args.video_batch, progress=not args.no_progress)
    except video.VideoError as e:
      print(f"zerodce enhance: {e}", file=sys.stderr)
      failed += 1
      continue
    if report.error:
      print(f"zerodce enhance: {job.src}: {report.error}; the "
            f"{report.frames} frames before it are in {job.dst}",
            file=sys.stderr)
      failed += 1
      continue
    ok += 1
    if not args.no_progress:
      print(f"{job.src} -> {job.dst}: {report.frames} frames "
            f"{report.width}x{report.height}, {report.fps:.1f} frames/s",
            file=sys.stderr)
  return ok, failed


def _load_enhancer(weights: str, scale_factor: int, *,
                   dtype: str = "float32", **enhancer_options):
  """(Enhancer, None) or (None, error message)."""
  import jax.numpy as jnp  # noqa: PLC0415
  from zerodce_jax import enhance, models, params_io  # noqa: PLC0415
  try:
    params, arch, _ = params_io.load_weights(weights)
  except params_io.WeightsError as e:
    return None, str(e)
  model = models.DCENet(
      **arch, dtype=jnp.bfloat16 if dtype == "bfloat16" else jnp.float32,
      scale_factor=scale_factor if arch["separable"] else 1)
  return enhance.Enhancer(model, params, **enhancer_options), None


def _memory_size(text: str) -> int | None:
  """``1.5G``, ``800M``, ``2048K``, a byte count, or ``none``."""
  t = text.strip().lower()
  if t in ("none", "0", "unlimited"):
    return None
  units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
  scale = units.get(t[-1:], 1)
  try:
    value = float(t[:-1] if t[-1:] in units else t) * scale
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r}: a size such as 1.5G, 800M or none") from None
  if value < 64 * 2**20:
    raise argparse.ArgumentTypeError(f"{text!r}: at least 64M")
  return int(value)


def _load_onnx_enhancer(path: str, **options):
  """(OnnxEnhancer, None) or (None, error message)."""
  if not path.endswith(".onnx") and not os.path.isfile(path):
    return None, (f"{path}: --runtime onnx takes an .onnx file from "
                  "`zerodce export --format onnx`")
  from zerodce_jax import onnx_runtime  # noqa: PLC0415
  try:
    return onnx_runtime.OnnxEnhancer(path, **options), None
  except onnx_runtime.OnnxModelError as e:
    return None, str(e)


def _cmd_export(args: argparse.Namespace) -> int:
  from zerodce_jax import export, params_io  # noqa: PLC0415
  fmt = args.format
  if fmt not in export.FORMATS:
    print(f"zerodce export: unknown format {fmt!r}; choose one of "
          f"{', '.join(export.FORMATS)}", file=sys.stderr)
    return 2
  try:
    params, arch, source = params_io.load_weights(args.weights)
  except params_io.WeightsError as e:
    print(f"zerodce export: {e}", file=sys.stderr)
    return 2
  sf = args.scale_factor
  if sf is None:
    sf = 12 if arch["separable"] else 1
  options = dict(scale_factor=sf, dtype=args.dtype, height=args.height,
                 width=args.width, batch=args.batch, with_maps=args.with_maps)
  if os.path.abspath(args.output) == os.path.abspath(args.weights):
    print("zerodce export: refusing to overwrite the weights file",
          file=sys.stderr)
    return 2
  try:
    if fmt == "onnx":
      data = export.export_onnx(params, arch, source=f"{args.weights}: "
                                f"{source}", **options)
    else:
      data = export.export_stablehlo(params, arch, **options)
  except ImportError as e:
    print(f"zerodce export: needs the export extra (pip install "
          f"'zerodce-jax[export]'): {e}", file=sys.stderr)
    return 2
  except export.ExportError as e:
    print(f"zerodce export: {e}", file=sys.stderr)
    return 2
  try:
    export.write_atomic(args.output, data)
  except OSError as e:
    print(f"zerodce export: cannot write {args.output}: {e}", file=sys.stderr)
    return 2
  kind = "zerodce++" if arch["separable"] else "zerodce"
  dims = "x".join(str(v) if v else n for n, v in
                  (("N", args.batch), ("H", args.height), ("W", args.width)))
  print(f"{args.output}: {fmt}, {kind} (depth {arch['depth']}, width "
        f"{arch['width']}, {arch['iterations']} iterations"
        + (f", scale factor {sf}" if sf != 1 else "") + f"), {args.dtype}, "
        f"input {dims}x3 NHWC RGB in [0, 1], {len(data):,} bytes")
  return 0


def _cmd_eval(args: argparse.Namespace) -> int:
  from zerodce_jax import evaluate, image_io, input_pipeline  # noqa: PLC0415
  enhancer, err = _load_enhancer(args.weights, args.scale_factor)
  if err:
    print(f"zerodce eval: {err}", file=sys.stderr)
    return 2
  if (args.low is None) == (args.dataset is None):
    print("zerodce eval: give --low FOLDER [--high FOLDER] or --dataset "
          "tfds:NAME[:SPLIT] --data-dir DIR", file=sys.stderr)
    return 2
  try:
    if args.dataset:
      if not args.dataset.startswith("tfds:") or not args.data_dir:
        raise evaluate.EvalError(
            f"--dataset wants tfds:NAME[:SPLIT] and --data-dir (where "
            f"`zerodce data build NAME` wrote it), got {args.dataset!r}")
      name, _, split = args.dataset[len("tfds:"):].partition(":")
      paired, examples = evaluate.tfds_examples(
          name, data_dir=args.data_dir, split=split or "test")
      rows = (evaluate.score_paired if paired
              else evaluate.score_unpaired)(enhancer, examples)
    elif args.high:
      pairs = evaluate.match_pairs(args.low, args.high)
      rows = evaluate.evaluate_paired(enhancer, pairs)
    else:
      paths = [(os.path.relpath(p, args.low), p)
               for p in input_pipeline.list_images(args.low)]
      rows = evaluate.evaluate_unpaired(enhancer, paths)
  except (evaluate.EvalError, image_io.ImageError, FileNotFoundError,
          ValueError) as e:
    print(f"zerodce eval: {e}", file=sys.stderr)
    return 2
  summary = evaluate.summarise(rows)
  print(evaluate.format_table(rows, summary))
  evaluate.write_results(rows, summary, json_path=args.json,
                         csv_path=args.csv,
                         meta={"weights": args.weights, "low": args.low,
                               "high": args.high, "dataset": args.dataset,
                               "scale_factor": args.scale_factor})
  return 0


def _cmd_bench(args: argparse.Namespace) -> int:
  if "train_step" in args.tasks.split(","):
    # as `zerodce train` runs by default (on a CPU: one device per core)
    _set_cpu_devices(args.devices, args.train_batch)
  import jax  # noqa: PLC0415
  from zerodce_jax import bench  # noqa: PLC0415
  try:
    sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1]
             for s in args.sizes.split(",")]
    if any(len(s) != 2 for s in sizes):
      raise ValueError
  except ValueError:
    print(f"zerodce bench: --sizes wants WIDTHxHEIGHT[,...], got "
          f"{args.sizes!r}", file=sys.stderr)
    return 2
  names = args.models.split(",")
  bad = [n for n in names if n not in ("zerodce", "zerodce++")]
  if bad:
    print(f"zerodce bench: unknown models {bad} (zerodce, zerodce++)",
          file=sys.stderr)
    return 2
  modes = args.torch_modes.split(",")
  if not set(modes) <= set(bench.TORCH_MODES):
    print(f"zerodce bench: --torch-modes wants some of "
          f"{','.join(bench.TORCH_MODES)}, got {args.torch_modes!r}",
          file=sys.stderr)
    return 2
  records = bench.run(
      model_names=names, sizes=sizes, batches=[args.batch],
      torch_modes=modes,
      dtypes=args.dtype.split(","), tasks=args.tasks.split(","),
      scale_factors=[int(s) for s in args.scale_factors.split(",")],
      vs_torch=args.vs_torch, vs_onnxruntime=args.vs_onnxruntime,
      repeats=args.repeats, train_batch=args.train_batch, shared=args.shared,
      device_counts=sorted({1, args.devices or jax.local_device_count()}))
  bench.write_json(records, args.json)
  for r in bench.ratios(records):
    print(f"{r['task']} {r['model']} {r['width']}x{r['height']} "
          f"b{r['batch']} ({r['devices']} device(s)): JAX {r['jax_s']:.4f} s, "
          f"{r['speedup_vs_best_peer']:.2f}x the fastest peer "
          f"({r['best_peer']})")
  print(f"wrote {args.json}")
  return 0


def _cmd_data(args: argparse.Namespace) -> int:
  if args.action == "pack":
    from zerodce_jax import input_pipeline  # noqa: PLC0415
    if not args.out:
      print("zerodce data pack: give --out DIR", file=sys.stderr)
      return 2
    try:
      n, size = input_pipeline.pack_resized(
          args.name, args.out, size=args.size, quality=args.quality,
          report=lambda m: print(m, file=sys.stderr))
    except FileNotFoundError as e:
      print(f"zerodce data pack: {e}", file=sys.stderr)
      return 2
    print(f"{n} images, {args.size}x{args.size} JPEG q{args.quality}, "
          f"{size / 2**20:.1f} MiB in {args.out}; train on it with "
          f"--config.data.path={args.out} --config.data.image_size="
          f"{args.size}")
    return 0
  try:
    from zerodce_jax import datasets  # noqa: PLC0415
  except ImportError as e:
    print(f"zerodce data: needs the data extra (pip install "
          f"'zerodce-jax[data]'): {e}", file=sys.stderr)
    return 2
  if args.name not in datasets.DATASETS:
    print(f"zerodce data: unknown dataset {args.name!r}; known: "
          f"{', '.join(datasets.DATASETS)}", file=sys.stderr)
    return 2
  if args.action == "layout":
    print(datasets.expected_layout(args.name))
    return 0
  if not args.manual_dir or not args.data_dir:
    print("zerodce data build: give --manual-dir and --data-dir",
          file=sys.stderr)
    return 2
  try:
    builder = datasets.build(args.name, manual_dir=args.manual_dir,
                             data_dir=args.data_dir)
  except datasets.LayoutError as e:
    print(f"zerodce data: {e}", file=sys.stderr)
    return 2
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f"{args.name} built in {args.data_dir}: " + ", ".join(
      f"{k} {n}" for k, n in sorted(splits.items())))
  print(f"train on it: --config.data.source=tfds:{args.name} "
        f"--config.data.path={args.data_dir}")
  return 0


def _set_cpu_devices(requested: int, batch_size: int) -> None:
  """Splits the CPU into ``requested`` host devices (0: one per core, capped
  to a divisor of the batch) unless XLA_FLAGS already says how many.

  Must run before JAX initialises its backends. Only the CPU platform is
  affected: on a GPU/TPU host the accelerators are still the devices used.
  On this project's 2-core machine, 2 host devices under pmap ran the
  official step (8x256x256) in 2.53 s against 3.43 s for one device.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in flags:
    return
  n = requested or (os.cpu_count() or 1)
  while n > 1 and batch_size % n:
    n -= 1
  if n > 1:
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count={n}").strip()


def _cmd_train(args: argparse.Namespace) -> int:
  from zerodce_jax import checkpoints, config_utils, training  # noqa: PLC0415
  try:
    overrides = config_utils.parse_override_args(args.overrides)
    config = config_utils.load_config(args.config)
    config_utils.apply_overrides(config, overrides)
  except (FileNotFoundError, KeyError, ValueError) as e:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f"zerodce train: {msg}", file=sys.stderr)
    return 2
  _set_cpu_devices(args.cpu_devices, config.batch_size)
  if args.coordinator and (args.num_processes is None
                           or args.process_id is None):
    print("zerodce train: --coordinator needs --num-processes and "
          "--process-id", file=sys.stderr)
    return 2
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
  try:
    training.train_and_evaluate(config, args.workdir,
                                progress=not args.no_progress)
  except (FileNotFoundError, checkpoints.CheckpointError,
          FloatingPointError) as e:
    print(f"zerodce train: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("zerodce train: interrupted; resume by running the same command",
          file=sys.stderr)
    return 130
  print(f"done: {args.workdir}/weights.msgpack "
        f"(zerodce enhance --weights {args.workdir}/weights.msgpack ...)")
  return 0


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``zerodce`` and its subcommands."""
  parser = argparse.ArgumentParser(
      prog="zerodce",
      description="Zero-DCE / Zero-DCE++ low-light image enhancement in JAX.")
  sub = parser.add_subparsers(dest="command", required=True,
                              metavar="COMMAND")

  p = sub.add_parser(
      "convert",
      help="convert an official PyTorch snapshot to zerodce-jax weights",
      description=(
          "Convert an official Zero-DCE or Zero-DCE++ PyTorch snapshot "
          "(Epoch99.pth; legacy or zip format) into a zerodce-jax weights "
          "file. torch is not needed. Kernels go from OIHW to HWIO, the "
          "curve sign from the official r to the paper's a = -r, and "
          "denormal floats are flushed to zero (they change no output by "
          "more than 1e-30 and slow CPUs down many times). The official "
          "weights are CC BY-NC 4.0: research use only."))
  p.add_argument("snapshot", help="official .pth file")
  p.add_argument("-o", "--output", required=True,
                 help="output weights file (e.g. zerodce_official.msgpack)")
  p.add_argument("--arch", choices=("auto", "zerodce", "zerodce++"),
                 default="auto",
                 help="expected architecture; 'auto' infers it from the file "
                 "(default: auto)")
  p.add_argument("--keep-denormals", action="store_true",
                 help="keep denormal weights as they are")
  p.set_defaults(func=_cmd_convert)

  p = sub.add_parser(
      "enhance", help="brighten low-light images and videos",
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
          "  zerodce enhance dark_clip.mp4 -o out/     # video, audio kept"))
  p.add_argument("inputs", nargs="*",
                 help="image or video files, folders or globs")
  p.add_argument("-o", "--output", default="enhanced",
                 help="output folder (default: enhanced)")
  p.add_argument("--weights", default=None,
                 help="bundled model name or a weights file from `zerodce "
                 "convert` / training (default: zerodce-default for images, "
                 "zerodce-pp-default, the real-time model, for videos)")
  p.add_argument("--scale-factor", type=int, default=12,
                 help="Zero-DCE++: estimate curves on the image down-scaled "
                 "by this factor (default 12, as the official test script)")
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
  p.add_argument("--max-memory", type=_memory_size,
                 default="1.5G", metavar="SIZE",
                 help="working memory of the network per call, e.g. 1.5G, "
                 "800M or 'none' (default 1.5G: any photo runs in about "
                 "this much above its decoded pixels and its output); "
                 "batch, tiling and tile size are chosen to fit")
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
                 "(1-A) m_new, reset at scene cuts (default 0, off: it did "
                 "not lower flicker with the bundled model; 0.6 did with the "
                 "official Zero-DCE++, see README)")
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
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar")
  p.set_defaults(func=_cmd_enhance)

  p = sub.add_parser(
      "export", help="write the model as an ONNX or StableHLO file",
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
  p.add_argument("--weights", default="zerodce-default",
                 help="bundled model name, weights file or training run "
                 "(default: zerodce-default)")
  p.add_argument("--format", required=True, help="onnx or stablehlo")
  p.add_argument("-o", "--output", required=True, help="file to write")
  p.add_argument("--dtype", default="float32",
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
  p.set_defaults(func=_cmd_export)

  p = sub.add_parser(
      "train", help="train a model from a config file",
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
  p.add_argument("--config", required=True,
                 help="config file, optionally with an argument: FILE[:ARG]")
  p.add_argument("--workdir", required=True,
                 help="run folder: checkpoints, metrics, samples, weights")
  p.add_argument("--cpu-devices", type=int, default=0,
                 help="on CPU, split the cores into this many data-parallel "
                 "devices (default 0: one per core, capped to a divisor of "
                 "the batch); ignored when XLA_FLAGS sets the count")
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
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar")
  p.set_defaults(func=_cmd_train)

  p = sub.add_parser(
      "eval", help="score a model on a paired or unpaired test set",
      description=(
          "Enhance every image of a test set and report the papers' "
          "figures. Paired (--low and --high, matched by relative path, "
          "extension ignored): PSNR, SSIM (dm-pix), MAE on 0-255. Unpaired "
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
  p.add_argument("--weights", default="zerodce-default",
                 help="bundled name, weights file or training workdir")
  p.add_argument("--scale-factor", type=int, default=12,
                 help="Zero-DCE++ scale factor (default 12)")
  p.add_argument("--json", help="write results as JSON here")
  p.add_argument("--csv", help="write per-image results as CSV here")
  p.set_defaults(func=_cmd_eval)

  p = sub.add_parser(
      "bench", help="time inference and training, optionally vs PyTorch",
      description=(
          "Time Zero-DCE / Zero-DCE++ (median of --repeats runs after "
          "compilation, block_until_ready; compile time apart) and write "
          "JSON records (model, framework, task, height, width, batch, "
          "dtype, device, threads, median_s, min_s, compile_s, ...). "
          "--vs-torch times the official model re-written in PyTorch on the "
          "same inputs and thread count, with and without "
          "torch.set_flush_denormal(True); --vs-onnxruntime times the same "
          "weights exported to ONNX (zerodce export) in onnxruntime. Ratios "
          "are against the fastest peer."))
  p.add_argument("--models", default="zerodce,zerodce++")
  p.add_argument("--sizes", default="1200x900",
                 help="WIDTHxHEIGHT list (default 1200x900, the paper's)")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--train-batch", type=int, default=8)
  p.add_argument("--devices", type=int, default=0,
                 help="train step: data-parallel devices, as `zerodce "
                 "train --cpu-devices` (default 0: what `zerodce train` "
                 "uses; one device is timed too)")
  p.add_argument("--dtype", default="float32",
                 help="float32, bfloat16 or both, comma-separated")
  p.add_argument("--tasks", default="infer",
                 help="infer, train_step, roofline (comma-separated)")
  p.add_argument("--scale-factors", default="1,12",
                 help="Zero-DCE++ scale factors (default 1,12)")
  p.add_argument("--vs-torch", action="store_true")
  p.add_argument("--torch-modes", default="eager,channels_last,compile",
                 help="PyTorch modes with --vs-torch, comma-separated "
                 "(default eager,channels_last,compile; torch.compile "
                 "compiles first, its time reported apart: minutes for a "
                 "train step on a small CPU)")
  p.add_argument("--vs-onnxruntime", action="store_true",
                 help="also time onnxruntime (needs the export extra)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--shared", default=os.path.join("..", "shared"),
                 help="folder with weights/ (official weights for torch)")
  p.add_argument("--json", required=True, help="output JSON path")
  p.set_defaults(func=_cmd_bench)

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
          "loader) and saved as JPEG --quality with full chroma; the 2,002 "
          "official training images become about 41 MiB at 256/q90."),
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
  p.set_defaults(func=_cmd_data)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``zerodce`` console script."""
  parser = build_parser()
  args, rest = parser.parse_known_args(argv)
  if args.command == "train":
    args.overrides = rest
  elif rest:
    parser.error(f"unrecognized arguments: {' '.join(rest)}")
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
