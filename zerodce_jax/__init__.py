"""zerodce-jax: Zero-DCE and Zero-DCE++ low-light enhancement in JAX/Flax.

Modules, one responsibility each:
  curves        LE-curve maths (``le_curve``, ``apply_curves``)
  resize        PyTorch-exact bilinear resampling (Zero-DCE++ scale factor)
  models        the DCE-Net flax module and named architectures
  losses        the four no-reference losses, paper and official variants
  safe_pickle   a pickle reader that runs no code (allow-listed globals)
  torch_pickle  safe, torch-free reader of PyTorch ``.pth`` files
  convert       official snapshots -> flax params
  params_io     self-describing weights files
  export        ONNX and StableHLO files of a model (``zerodce export``)
  onnx_runtime  enhance with an exported ONNX file through onnxruntime
  video         low-light video: streaming decode -> enhance -> encode
  cli           the ``zerodce`` command
"""

from zerodce_jax.convert import convert_official
from zerodce_jax.curves import apply_curves, le_curve
from zerodce_jax.losses import (
    OFFICIAL_PP_WEIGHTS, OFFICIAL_WEIGHTS, PAPER_WEIGHTS, TERMS, WEIGHTS,
    color_constancy_official, color_constancy_paper,
    exposure_control_official, exposure_control_paper,
    illumination_smoothness_official, illumination_smoothness_paper,
    spatial_consistency_official, spatial_consistency_paper, total_loss)
from zerodce_jax.models import (ARCHITECTURES, DCENet, ZeroDCE, ZeroDCEpp,
                                count_params, make_model)
from zerodce_jax.params_io import WeightsError, load_params, save_params

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "DCENet", "OFFICIAL_PP_WEIGHTS", "OFFICIAL_WEIGHTS",
    "PAPER_WEIGHTS", "TERMS", "WEIGHTS", "WeightsError", "ZeroDCE",
    "ZeroDCEpp", "apply_curves", "color_constancy_official",
    "color_constancy_paper", "convert_official", "count_params",
    "exposure_control_official", "exposure_control_paper",
    "illumination_smoothness_official", "illumination_smoothness_paper",
    "le_curve", "load_params", "make_model", "save_params",
    "spatial_consistency_official", "spatial_consistency_paper", "total_loss",
]
