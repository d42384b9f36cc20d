"""DARK FACE: low-light images with face boxes (when the labels are there)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from zerodce_jax.training.datasets import common


def parse_boxes(path: str, height: int, width: int) -> list:
  """A DARK FACE label file (N, then N lines 'x1 y1 x2 y2') as TFDS boxes."""
  with open(path) as f:
    lines = [l.split() for l in f.read().strip().splitlines()]
  if not lines:
    return []
  n = int(lines[0][0])
  boxes = []
  for parts in lines[1:1 + n]:
    x1, y1, x2, y2 = (float(v) for v in parts[:4])
    boxes.append(tfds.features.BBox(
        ymin=min(max(y1 / height, 0), 1), xmin=min(max(x1 / width, 0), 1),
        ymax=min(max(y2 / height, 0), 1), xmax=min(max(x2 / width, 0), 1)))
  if len(boxes) != n:
    raise ValueError(f"{path}: says {n} faces, lists {len(boxes)}")
  return boxes


class DarkFace(tfds.core.GeneratorBasedBuilder):
  """DARK FACE: ``image``, ``faces`` (normalised boxes), ``file_name``."""
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.expected_layout("dark_face")

  def _info(self):
    return self.dataset_info_from_configs(
        description="DARK FACE low-light face detection images.",
        features=tfds.features.FeaturesDict({
            "image": common.image_feature(),
            "faces": tfds.features.Sequence(tfds.features.BBoxFeature()),
            "has_labels": tfds.features.Scalar(dtype=np.bool_),
            "file_name": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    (images,) = common.require_dirs(str(dl_manager.manual_dir), "dark_face",
                                    "DarkFace/image")
    labels = os.path.join(str(dl_manager.manual_dir), "DarkFace", "label")
    return {"train": self._generate_examples(images, labels)}

  def _generate_examples(self, image_dir, label_dir):
    for path in common.images_in(image_dir, "dark_face"):
      name = os.path.basename(path)
      image = common.rgb_image(path)
      label = os.path.join(label_dir, os.path.splitext(name)[0] + ".txt")
      has = os.path.isfile(label)
      faces = parse_boxes(label, image.height, image.width) if has else []
      yield name, {"image": image, "faces": faces, "has_labels": has,
                   "file_name": name}
