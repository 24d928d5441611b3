"""Myelin: hardware/software co-design toolkit for SpiNNaker2-style accelerators."""
