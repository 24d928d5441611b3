"""ONNX model builders (onnx.helper only): BERT encoders, MiniLM, a small CNN."""
