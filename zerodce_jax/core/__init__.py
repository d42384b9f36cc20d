"""The maths, pure functions: LE-curves (``curves``), PyTorch-exact
resampling (``resize``), the CPU-tuned convolutions and their gradients
(``kernels``), DCE-Net (``models``), the four no-reference losses
(``losses``), evaluation metrics (``metrics``), the no-reference NIQE score
(``niqe``) and gradient probes for research (``research``)."""
