"""aecluster: unsupervised image clustering with autoencoders."""

from aecluster.errors import AeclusterError, InputError

__all__ = ["AeclusterError", "InputError", "__version__"]
__version__ = "0.1.0"
