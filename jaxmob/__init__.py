"""jaxmob: JAX-native vectorised simulator and multi-agent RL trainer for urban mobility.

`jaxmob.core` is the floor (environment protocol, plug-in interfaces, registries);
`jaxmob.envs.<name>` the environments, `jaxmob.algos` the learners, and
`jaxmob.train` / `sweep` / `report` / `cli` the tools on top.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
