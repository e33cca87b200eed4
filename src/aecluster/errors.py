"""Exceptions the CLI turns into one plain line and exit code 2."""


class AeclusterError(Exception):
    """Base class of every error aecluster reports to a user without a traceback."""


class InputError(AeclusterError, ValueError):
    """A file or argument given by the user is missing, malformed or unusable."""
