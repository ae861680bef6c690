"""Flax (Linen) modules shared by the learners."""
from .mlp import MLP

__all__ = ["MLP"]
