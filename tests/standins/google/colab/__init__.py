"""Stand-in for the ``google.colab`` package, for tests off Colab (put tests/standins on PYTHONPATH).

Only what colabssh touches: ``drive.mount`` / ``drive.flush_and_unmount`` and ``userdata.get``,
with the real ones' failures. Env: FAKE_COLAB_ROOT (the fake Google account's files; Drive is
FAKE_COLAB_ROOT/MyDrive), FAKE_COLAB_DRIVE_FAIL (timeout | denied), FAKE_COLAB_SECRETS (a JSON file
{"NAME": "value"}; a null value means the secret exists but the notebook has no access to it).
"""

__version__ = "0.0.1a2+colabssh-standin"
