"""``python -m colab_bootstrap.demo [--gpu] [--json]``: one JSON document (with --json) or a table on stdout."""

from __future__ import annotations

from .run import main

raise SystemExit(main())
