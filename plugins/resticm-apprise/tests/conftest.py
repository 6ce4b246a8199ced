"""The plugin is tested from its source tree (tests/test_apprise_plugin_distribution.py
in resticm-core installs it for real)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
