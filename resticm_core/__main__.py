"""``python -m resticm_core`` is the ``resticm`` command."""

from .cli import main

raise SystemExit(main())
