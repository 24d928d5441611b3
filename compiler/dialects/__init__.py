"""Myelin's IR dialects: ``graph`` (float/int tensor ops) and ``qnt`` (quantized ops)."""
