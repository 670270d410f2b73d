"""Exporters and importers: NIR, lava-dl netx HDF5, ONNX."""
