"""What users run: enhance arrays of any size (``enhance``), folders of
image files (``enhance_files``), videos (``video``), test sets
(``evaluate``) and exported ONNX files (``onnx_runtime``)."""
