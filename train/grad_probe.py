"""Per-term gradient norms of the Zero-DCE losses, paper vs official.

    python train/grad_probe.py --images ../shared/test_images/LIME \
        [--weights zerodce-default|FILE.msgpack] [--size 128] [--batch 4]

Loads a batch (resized), then for each loss term and variant prints its value
and the L2 norms of its gradient w.r.t. the curve maps and the params: e.g.
how much more the official squared exposure error pushes than the paper's
absolute one at this operating point.
"""

import argparse
import sys

import jax.numpy as jnp

from zerodce_jax.training import input_pipeline
from zerodce_jax.core import models, research
from zerodce_jax.formats import image_io, weights


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--images", required=True, help="folder of images")
  ap.add_argument("--weights", default="zerodce-default")
  ap.add_argument("--size", type=int, default=128)
  ap.add_argument("--batch", type=int, default=4)
  args = ap.parse_args(argv)
  paths = image_io.list_images(args.images)[:args.batch]
  images, _ = input_pipeline.load_resized(paths, args.size)
  batch = jnp.asarray(images.astype("float32") / 255)
  params, arch, _ = weights.load_weights(args.weights)
  rows = research.term_gradient_norms(models.DCENet(**arch), params, batch)
  print(f"{len(paths)} images at {args.size}x{args.size}, weights "
        f"{args.weights}")
  print(f"{'term':5} {'variant':9} {'value':>11} {'|dL/dA|':>11} "
        f"{'|dL/dparams|':>13}")
  for r in rows:
    print(f"{r['term']:5} {r['variant']:9} {r['value']:11.4g} "
          f"{r['grad_maps_norm']:11.4g} {r['grad_params_norm']:13.4g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
