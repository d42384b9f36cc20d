"""What the dataset builders share: layouts, file listing, features."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from zerodce_jax.formats import image_io

__all__ = ["DATASETS", "LayoutError", "expected_layout", "images_in",
           "require_dirs", "image_feature", "rgb_image"]


class LayoutError(FileNotFoundError):
  """The manual folder is missing or laid out differently than expected."""


# name -> (expected layout under MANUAL_DIR, where users obtain it)
DATASETS: dict[str, tuple[str, str]] = {
    "sice": (
        "SICE/Dataset_Part1/<sequence>/<any>.jpg  (one folder per sequence)\n"
        "SICE/Dataset_Part1/Label/<sequence>.jpg  (its reference image)\n"
        "SICE/Dataset_Part2/<sequence>/<any>.jpg\n"
        "SICE/Dataset_Part2/Label/<sequence>.jpg",
        "SICE (Cai, Gu, Zhang, TIP 2018): github.com/csjcai/SICE, Part1 and "
        "Part2 archives"),
    "lol": (
        "LOL/our485/low/<name>.png, LOL/our485/high/<name>.png  (485 pairs)\n"
        "LOL/eval15/low/<name>.png, LOL/eval15/high/<name>.png  (15 pairs)",
        "LOL (Wei et al., BMVC 2018, 'Deep Retinex Decomposition'): the "
        "LOLdataset archive from the authors' project page"),
    "dicm": ("DICM/<name>.jpg  (64 images)",
             "DICM (Lee et al. 2013); also in the Zero-DCE repository's "
             "test_data"),
    "lime": ("LIME/<name>.bmp  (10 images)",
             "LIME (Guo et al., TIP 2017) test images; also in the Zero-DCE "
             "repository's test_data"),
    "mef": ("MEF/<name>.png  (17 images)",
            "MEF (Ma et al., TIP 2015) low-light images"),
    "npe": ("NPE/<name>.jpg  (84 images)",
            "NPE (Wang et al., TIP 2013) test images"),
    "vv": ("VV/<name>.jpg  (24 images)", "VV (Vonikakis) test images"),
    "dark_face": (
        "DarkFace/image/<name>.png\n"
        "DarkFace/label/<name>.txt  (optional: first line N, then N lines "
        "'x1 y1 x2 y2' in pixels)",
        "DARK FACE (UG2+ challenge, Yang et al. 2020): the training set "
        "with its label folder"),
}


def expected_layout(name: str) -> str:
  """A paragraph telling where to put the files of dataset ``name``."""
  layout, source = DATASETS[name]
  return (f"Expected layout of '{name}' under the manual folder "
          f"(--manual-dir):\n  " + layout.replace("\n", "\n  ")
          + f"\nObtain it from: {source}")


def require_dirs(manual_dir: str, name: str, *rel: str) -> list[str]:
  """Absolute paths of ``rel`` folders; a clear LayoutError if any is absent."""
  paths = [os.path.join(manual_dir, r) for r in rel]
  missing = [p for p in paths if not os.path.isdir(p)]
  if missing:
    raise LayoutError(f"{', '.join(missing)}: not found.\n"
                      + expected_layout(name))
  return paths


def images_in(folder: str, name: str) -> list[str]:
  """Images directly in ``folder``, sorted; LayoutError if there are none."""
  files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(image_io.IMAGE_EXTENSIONS))
  if not files:
    raise LayoutError(f"{folder}: no images.\n" + expected_layout(name))
  return files


def image_feature() -> tfds.features.Image:
  """RGB images of any size, stored as PNG (lossless)."""
  return tfds.features.Image(shape=(None, None, 3), encoding_format="png")


def rgb_image(path: str):
  """An image file as an RGB ``PIL.Image`` (grey/alpha/palette converted).

  TFDS encodes PIL images with Pillow; NumPy arrays would need TensorFlow.
  """
  from PIL import Image  # noqa: PLC0415
  with Image.open(path) as im:
    return im.convert("RGB")
