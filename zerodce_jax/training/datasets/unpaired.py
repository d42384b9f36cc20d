"""The unpaired low-light test sets: DICM, LIME, MEF, NPE, VV."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from zerodce_jax.training.datasets import common


class _Unpaired(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One folder of low-light images, one ``test`` split."""
  VERSION = tfds.core.Version("1.0.0")
  FOLDER = ""
  NAME = ""

  @property
  def MANUAL_DOWNLOAD_INSTRUCTIONS(self):  # noqa: N802 - TFDS's name
    return common.expected_layout(self.NAME)

  def _info(self):
    return self.dataset_info_from_configs(
        description=f"{self.FOLDER}: unpaired low-light test images.",
        features=tfds.features.FeaturesDict({
            "image": common.image_feature(),
            "file_name": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    (folder,) = common.require_dirs(str(dl_manager.manual_dir), self.NAME,
                                    self.FOLDER)
    return {"test": self._generate_examples(folder)}

  def _generate_examples(self, folder):
    for path in common.images_in(folder, self.NAME):
      name = os.path.basename(path)
      yield name, {"image": common.rgb_image(path), "file_name": name}


class Dicm(_Unpaired):
  FOLDER, NAME = "DICM", "dicm"


class Lime(_Unpaired):
  FOLDER, NAME = "LIME", "lime"


class Mef(_Unpaired):
  FOLDER, NAME = "MEF", "mef"


class Npe(_Unpaired):
  FOLDER, NAME = "NPE", "npe"


class Vv(_Unpaired):
  FOLDER, NAME = "VV", "vv"
