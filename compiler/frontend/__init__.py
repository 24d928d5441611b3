"""Model importers (ONNX -> graph dialect)."""
