"""File-level enhancement: inputs -> outputs, batches, errors, progress.

The CLI's ``zerodce enhance`` is a thin caller of ``enhance_paths``.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
import warnings
from typing import Callable, Sequence


from zerodce_jax.apps import enhance as enhance_lib
from zerodce_jax.formats import image_io
from zerodce_jax.apps.video import VIDEO_EXTENSIONS

__all__ = ["Job", "collect_jobs", "enhance_paths"]


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and where its result goes."""
  src: str
  dst: str


def collect_jobs(inputs: Sequence[str], out_dir: str, *,
                 fmt: str | None = None, suffix: str = ""
                 ) -> tuple[list[Job], list[str]]:
  """Expands files, folders (recursive) and globs into jobs.

  A folder's images keep their path relative to it under ``out_dir``; a
  file or glob match goes to ``out_dir`` by its base name. ``fmt`` changes
  the extension. Returns ``(jobs, errors)``; inputs that match nothing, and
  outputs that would overwrite an input, are errors (one line each).
  """
  jobs: list[Job] = []
  errors: list[str] = []
  seen_dst: set[str] = set()
  all_src = set()
  pairs: list[tuple[str, str]] = []  # (src, relative output path)
  for item in inputs:
    if os.path.isdir(item):
      for p in image_io.list_images_or_empty(
          item, extensions=image_io.IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
        pairs.append((p, os.path.relpath(p, item)))
      continue
    matches = [item] if os.path.exists(item) else sorted(glob.glob(
        item, recursive=True))
    if not matches:
      errors.append(f"{item}: no such file")
      continue
    for p in matches:
      if os.path.isdir(p):
        continue
      pairs.append((p, os.path.basename(p)))
  for src, _ in pairs:
    all_src.add(os.path.realpath(src))
  for src, rel in pairs:
    stem, ext = os.path.splitext(rel)
    if fmt is not None and ext.lower() not in VIDEO_EXTENSIONS:
      ext = "." + ("jpg" if fmt == "jpeg" else fmt)
    dst = os.path.join(out_dir, stem + suffix + ext)
    real = os.path.realpath(dst)
    if real in all_src:
      errors.append(f"{src}: output {dst} would overwrite an input; choose "
                    "another --output folder or a --suffix")
      continue
    if real in seen_dst:
      errors.append(f"{src}: output {dst} is also the output of another "
                    "input; skipped")
      continue
    seen_dst.add(real)
    jobs.append(Job(src, dst))
  return jobs, errors


def _read_chunks(jobs: Sequence[Job], enhancer, report):
  """``(loaded, n_unreadable)`` chunks: up to ``enhancer.batch_size``
  images, and no more decoded pixels than ``enhancer.max_pixels`` unless a
  single image has more (a big photo is read, enhanced and written alone,
  so memory does not grow with the batch)."""
  loaded, pixels, bad = [], 0, 0
  for job in jobs:
    try:
      item = (job, *image_io.read_image(job.src))
    except image_io.ImageError as e:
      report(f"zerodce enhance: {e}")
      bad += 1
      continue
    n = item[1].shape[0] * item[1].shape[1]
    if loaded and pixels + n > enhancer.max_pixels:
      yield loaded, bad
      loaded, pixels, bad = [], 0, 0
    loaded.append(item)
    pixels += n
    if len(loaded) >= enhancer.batch_size:
      yield loaded, bad
      loaded, pixels, bad = [], 0, 0
  if loaded or bad:
    yield loaded, bad


def enhance_paths(jobs: Sequence[Job], enhancer: enhance_lib.Enhancer, *,
                  fmt: str | None = None, compare: bool = False,
                  progress: bool = True,
                  report: Callable[[str], None] = lambda m: print(
                      m, file=sys.stderr)) -> tuple[int, int]:
  """Enhances files; a bad file is reported and skipped, never fatal.

  Images are read a batch at a time (up to ``enhancer.batch_size`` images
  and ``enhancer.max_pixels`` decoded pixels, or one bigger image) and
  enhanced together (same-bucket images share one compiled call).

  Returns:
    ``(n_ok, n_failed)``.
  """
  try:
    from tqdm import tqdm  # noqa: PLC0415
  except ImportError:  # pragma: no cover - tqdm is a dependency
    tqdm = None
  bar = tqdm(total=len(jobs), unit="img", disable=not progress,
             file=sys.stderr) if tqdm else None
  ok = failed = 0
  for loaded, bad in _read_chunks(jobs, enhancer, report):
    failed += bad
    if bar:
      bar.update(bad)
    if not loaded:
      continue
    try:
      outs = enhancer([rgb for _, rgb, _ in loaded])
    except Exception:  # noqa: BLE001 - retry one by one to isolate it
      outs = []
      for job, rgb, _ in loaded:
        try:
          outs.append(enhancer([rgb])[0])
        except Exception as e1:  # noqa: BLE001
          report(f"zerodce enhance: {job.src}: cannot enhance ({e1})")
          outs.append(None)
    for (job, rgb, info), out in zip(loaded, outs):
      if out is not None:
        try:
          os.makedirs(os.path.dirname(job.dst) or ".", exist_ok=True)
          with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image_io.write_image(job.dst, out, info, format=fmt)
          for w in caught:
            report(f"zerodce enhance: warning: {w.message}")
          if compare:
            stem = os.path.splitext(job.dst)[0]
            image_io.write_image(
                stem + "_compare.png", image_io.side_by_side(rgb, out),
                image_io.ImageInfo(bit_depth=8, gray=False, alpha=None,
                                   format="png"))
          ok += 1
        except (image_io.ImageError, OSError) as e:
          report(f"zerodce enhance: {e}")
          failed += 1
      else:
        failed += 1
      if bar:
        bar.update(1)
  if bar:
    bar.close()
  return ok, failed
