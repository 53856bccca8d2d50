"""google.colab.errors stand-in."""


class Error(Exception):
    """Base class for Colab errors."""
