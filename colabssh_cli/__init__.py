"""colabssh: a Google Colab runtime as a machine of your own, over SSH."""

__version__ = "0.1.0"

DEFAULT_ALIAS = "colab"  # the ssh alias of a session when none is named (session.py and `connect --name`)
