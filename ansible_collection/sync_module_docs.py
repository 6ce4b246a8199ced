"""Copy DOCUMENTATION, EXAMPLES and RETURN from resticm_core.ansible_module into the
collection's module file, which ansible-doc reads literally.

Run after editing them: ``python ansible_collection/sync_module_docs.py``.
tests/test_ansible_module.py fails while the two differ.
"""

from __future__ import annotations

import re
from pathlib import Path

from resticm_core import ansible_module

MODULE_FILE = Path(__file__).parent / "ansible_collections/resticm/core/plugins/modules/resticm.py"


def synced(text: str) -> str:
    """*text* (the module file) with the three blocks replaced by the library's."""
    for name in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        value = getattr(ansible_module, name)
        pattern = re.compile(rf'^{name} = r""".*?"""$', re.S | re.M)
        text, count = pattern.subn(lambda _m, n=name, v=value: f'{n} = r"""{v}"""', text)
        if count != 1:
            raise SystemExit(f"{MODULE_FILE}: expected one {name} block, found {count}")
    return text


if __name__ == "__main__":
    MODULE_FILE.write_text(synced(MODULE_FILE.read_text()))
    print(f"synced {MODULE_FILE}")
