"""Our model vs the converted official weights on the official test images.

    python -m benchmarks.compare_official --weights zerodce-default \
        [--shared ../shared] [--grid docs/bundled_vs_official.png]
    python -m benchmarks.compare_official --weights zerodce-pp-default \
        --grid docs/bundled_pp_vs_official.png --out docs/bundled_pp_model

Zero-DCE weights are compared with the official Zero-DCE, Zero-DCE++ weights
with the official Zero-DCE++ (both at --scale-factor, default 12, as the
official test script).

Enhances every image of ../shared/test_images with both, prints per-set means
of PSNR/SSIM between the two outputs and of brightness, writes OUT/compare.json
and a grid of thumbnails (input | ours | official) for a few images.
"""

import os
import sys

import numpy as np
from PIL import Image

from benchmarks import _common

from zerodce_jax.apps import enhance, evaluate
from zerodce_jax.core import models
from zerodce_jax.formats import convert, image_io, weights

GRID = ["DICM/01.jpg", "DICM/12.jpg", "DICM/45.jpg", "LIME/3.bmp",
        "LIME/7.bmp"]


def _thumb(x, height=160):
  im = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
  w = round(im.width * height / im.height)
  return np.asarray(im.resize((w, height), Image.Resampling.LANCZOS))


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--weights", default="zerodce-default")
  ap.add_argument("--grid", default="docs/bundled_vs_official.png")
  ap.add_argument("--scale-factor", type=int, default=12,
                  help="Zero-DCE++ only (default 12)")
  args = ap.parse_args(argv)
  root = os.path.join(args.shared, "test_images")
  params, arch, source = weights.load_weights(args.weights)
  ref_file = ("zerodce_pp_official_epoch99.pth" if arch["separable"]
              else "zerodce_official_epoch99.pth")
  official = os.path.join(args.shared, "weights", ref_file)
  if not os.path.isfile(official):
    print(f"{official} not found: nothing to compare against",
          file=sys.stderr)
    return 2
  off, off_arch, _ = convert.convert_official(official)
  sf = args.scale_factor
  ours = enhance.Enhancer(models.model_from_arch(arch, scale_factor=sf),
                          params)
  ref = enhance.Enhancer(models.model_from_arch(off_arch, scale_factor=sf),
                         off)
  paths = [(os.path.relpath(p, root), p)
           for p in image_io.list_images(root)]
  rows, triples = evaluate.compare_models(ours, ref, paths)
  summary = evaluate.summarise(rows)
  print(evaluate.format_table(rows, summary).splitlines()[0])
  print(evaluate.format_table(rows, summary).splitlines()[-1])
  os.makedirs(args.out, exist_ok=True)
  evaluate.write_results(rows, summary,
                         json_path=os.path.join(args.out, "compare.json"),
                         meta={"ours": args.weights, "source": source,
                               "reference": f"official {ref_file}",
                               "scale_factor": sf})
  picked = [t for (name, _), t in zip(paths, triples) if name in GRID]
  rows_img = [np.concatenate([_thumb(x) for x in t], axis=1) for t in picked]
  width = max(r.shape[1] for r in rows_img)
  rows_img = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)),
                     constant_values=255) for r in rows_img]
  os.makedirs(os.path.dirname(args.grid) or ".", exist_ok=True)
  Image.fromarray(np.concatenate(rows_img, axis=0)).save(args.grid)
  print(f"grid (input | ours | official): {args.grid}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
