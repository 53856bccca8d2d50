"""google.colab._message stand-in: what a failed request to the Colab frontend raises."""


class MessageError(RuntimeError):
    """An error answered by the notebook frontend."""
