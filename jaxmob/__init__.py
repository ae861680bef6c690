"""jaxmob: JAX-native vectorised simulator and multi-agent RL trainer for urban mobility."""
from . import city

__version__ = "0.1.0"
__all__ = ["city", "__version__"]
