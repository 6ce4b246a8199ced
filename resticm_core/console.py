"""The ``resticm`` console script and ``python -m resticm_core``.

``resticm --version`` is what monitoring agents and configuration management run
most: it is answered here, before the CLI module (argparse, and everything the
commands import) is loaded, so it costs the interpreter's start and this module.
Everything else goes to :func:`resticm_core.cli.main`.
"""

import sys

from . import __version__


def main() -> int:
    """The console script: ``--version``/``-V`` alone here, the rest in the CLI."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(f"resticm {__version__}")
        return 0
    from .cli import main as cli_main  # the whole CLI only for a real command

    return cli_main()
