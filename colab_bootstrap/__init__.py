"""colabssh's runtime side: what the pasted Colab cell runs.

Standard library only at module level (pyngrok and torch are imported inside the
functions that need them), so that `colabssh bootstrap` can inline this package
into one cell and the laptop can ship parts of it over SSH as source.
"""

__version__ = "0.1.0"
