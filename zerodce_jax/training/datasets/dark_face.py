"""DARK FACE: low-light images with face boxes (when the labels are there)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from zerodce_jax.formats import face_labels
from zerodce_jax.training.datasets import common


def parse_boxes(path: str, height: int, width: int) -> list:
  """A DARK FACE label file as TFDS boxes (``formats.face_labels`` reads and
  checks it; coordinates divided by the image size, as before).

  Raises:
    common.LayoutError: the file is malformed (one line naming it).
  """
  try:
    boxes = face_labels.read_face_labels(path, width=width, height=height)
  except face_labels.LabelError as e:
    raise common.LayoutError(str(e)) from None
  return [tfds.features.BBox(
      ymin=min(y1 / height, 1.0), xmin=min(x1 / width, 1.0),
      ymax=min(y2 / height, 1.0), xmax=min(x2 / width, 1.0))
      for x1, y1, x2, y2 in boxes]


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
