"""The names of :mod:`resticm_core.notify`, under the module path plugins were first
written against (``from resticm_core.notifiers import Event, Notifier, dispatch``).

New code imports from :mod:`resticm_core` (the plugin API) or :mod:`resticm_core.notify`.
"""

from .notify import *  # noqa: F403 (the whole public API of the package, by design)
from .notify import __all__ as __all__
