"""aecluster: unsupervised image clustering with autoencoders.

`from aecluster import AECluster` is the front door (see aecluster.estimator).
"""

from typing import Any

from aecluster.errors import AeclusterError, InputError

__all__ = ["AECluster", "AeclusterError", "InputError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # the estimator pulls in torch and scikit-learn: import it only when asked for
    if name == "AECluster":
        from aecluster.estimator import AECluster

        return AECluster
    raise AttributeError(f"module 'aecluster' has no attribute {name!r}")
