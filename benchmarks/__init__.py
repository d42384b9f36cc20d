"""Benchmarks and tooling that users of the library never import: the timing
harness and its peers (a PyTorch port of the official networks, onnxruntime),
the accelerator command, profiling, convolution candidates and the lowering
checks. Run from the repository root as ``python -m benchmarks.NAME``;
``zerodce bench`` is a thin entry point to ``benchmarks.harness``. Results go
to ``benchmarks/results/`` and reach the docs through ``benchmarks.report``.
"""
