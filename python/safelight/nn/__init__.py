"""Neural networks on secret shares: import a trained model and run it privately.

:func:`load_onnx` turns an ONNX graph into a :class:`~safelight.Program` (public: the
architecture) and a dictionary of weights (secret: what the model owner encodes and
shares). The image owner encodes the data inputs; the servers never see either.
"""

from __future__ import annotations

from .onnx_import import SUPPORTED_OPS, Model, load_onnx

__all__ = ["SUPPORTED_OPS", "Model", "load_onnx"]
