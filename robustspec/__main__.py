"""``python -m robustspec``: the same as the ``robustspec`` command."""

from .cli import main

raise SystemExit(main())
