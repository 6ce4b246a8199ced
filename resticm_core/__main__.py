"""``python -m resticm_core`` is the ``resticm`` command."""

from .console import main

raise SystemExit(main())
