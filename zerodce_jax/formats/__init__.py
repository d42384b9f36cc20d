"""Files that strangers hand us and that we write: atomic writes
(``atomic``), a pickle reader that runs no code (``safe_pickle``), PyTorch
snapshots without torch (``torch_pickle``), official weights to ours
(``convert``), weights files (``params_io``), where weights come from
(``weights``), training checkpoints (``checkpoints``), image files
(``image_io``) and ONNX/StableHLO files (``export``)."""
