"""jaxmob: JAX-native vectorised simulator and multi-agent RL trainer for urban mobility.

`jaxmob.core` is the floor (environment protocol, plug-in interfaces, registries);
`jaxmob.envs.<name>` the environments, `jaxmob.algos` the learners, and
`jaxmob.train` / `sweep` / `report` / `cli` the tools on top.
"""

__version__ = "0.1.0"
__all__ = ["__version__", "make", "env_ids"]


def __getattr__(name):  # `jaxmob.make` without importing JAX for `import jaxmob`
    if name in ("make", "env_ids"):
        from . import api as module

        return getattr(module, name)
    raise AttributeError(f"module 'jaxmob' has no attribute {name!r}")
