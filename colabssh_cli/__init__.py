"""colabssh: a Google Colab runtime as a machine of your own, over SSH."""

__version__ = "0.1.0"
