"""Data generation: MATD3 behavior training, the fixed opponents, the shipped behavior policies."""
