#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module resticm: a thin wrapper over resticm_core.ansible_module.

The logic lives in the resticm_core package, which must be installed for the
Python interpreter Ansible uses on the managed host. DOCUMENTATION, EXAMPLES and
RETURN are copies of resticm_core.ansible_module's (ansible-doc reads them from
this file; tests/test_ansible_module.py keeps them identical).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resticm
short_description: Run restic backups through resticm_core on managed hosts
description:
  - Runs one resticm command (C(backup), the default workflow, C(full), C(forget),
    C(check) or C(snapshots)) on the managed host with the resticm_core library,
    hooks included, and returns the run report.
  - The host needs the C(restic) binary and the Python package C(resticm-core)
    installed for the Python interpreter Ansible uses there.
  - A failed step (a pre_backup hook, the backup, forget...) fails the task with the
    report's error text; secrets never appear in the result.
version_added: "0.1.0"
author:
  - resticm_core maintainers
options:
  config:
    description:
      - Path of a resticm YAML configuration file on the managed host.
      - Mutually exclusive with O(config_content); one of them is required.
    type: path
  config_content:
    description:
      - The configuration as a mapping, in the same shape as the YAML file.
      - 'Validated exactly like a file; errors read C(<config_content>: key.path: message).'
      - Use absolute paths for hooks and files; relative ones resolve against the
        module's working directory.
      - Secrets written inline here appear in Ansible's invocation log on the host;
        prefer O(password) or C(password_file).
    type: dict
  command:
    description:
      - What to run. C(backup) runs pre_backup, backup, post_backup and the result
        hooks; C(default) is the bare C(resticm) (backup then forget); C(full) adds
        prune and check.
      - C(forget) applies the retention policy to this host's snapshots;
        C(check) runs C(restic check); C(snapshots) lists this host's snapshots.
        These three run no hooks.
      - C(restore) restores O(snapshot) into O(target) from O(source), or from the
        first of the primary and C(copy_to_backends) that holds it, with the
        pre_restore and post_restore hooks.
    type: str
    default: backup
    choices: [backup, default, full, forget, check, snapshots, restore]
  snapshot:
    description:
      - C(restore) only. C(latest) (this host, the configured directories),
        C(latest~N) (the N-th before it) or a snapshot id prefix.
    type: str
    default: latest
  target:
    description:
      - C(restore) only. The directory to restore into (required for C(restore)).
        A non-empty one needs O(overwrite).
    type: path
  source:
    description:
      - C(restore) only. The repository to restore from (C(primary) or a backend
        name, the CLI's C(--from)); default the first that holds the snapshot.
    type: str
  include:
    description:
      - C(restore) only. Restore only what these restic patterns match.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - C(restore) only. Do not restore what these restic patterns match.
    type: list
    elements: str
    default: []
  overwrite:
    description:
      - C(restore) only. What happens to existing files in a non-empty target.
    type: str
    choices: [always, if-changed, never]
  no_hooks:
    description:
      - Run no hook of any phase (C(--no-hooks)).
    type: bool
    default: false
  tags:
    description:
      - Extra tags for this backup, after the config's C(default_tags).
    type: list
    elements: str
    default: []
  password:
    description:
      - Repository password. Overrides the config's C(password),
        C(password_file) and C(password_command) for the primary repository.
      - Never logged and never returned.
    type: str
notes:
  - Check mode of C(restore) is its dry run, as C(resticm restore -n); nothing is
    written, and C(changed) says whether anything would be restored.
  - Check mode is a dry run. C(backup), C(default) and C(full) run nothing and
    report C(changed=true) when a snapshot would be written. C(forget) asks restic
    what it would remove with C(restic --no-lock forget --dry-run), which changes
    nothing. C(check) does not run. C(snapshots) is read-only and runs.
  - A partial backup (restic exit 3, some files unreadable) succeeds with a warning.
  - Another run holding the configuration's lock fails the task.
requirements:
  - restic >= 0.14 on the managed host
  - resticm-core (Python) on the managed host
"""

EXAMPLES = r"""
- name: Back up with the host's configuration file
  resticm.core.resticm:
    config: /etc/resticm/config.yaml

- name: Default workflow (backup then forget), with a vaulted password
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: default
    password: "{{ vault_restic_password }}"
    tags: [ansible]

- name: Configuration given inline
  resticm.core.resticm:
    config_content:
      repository: /srv/restic
      password_file: /etc/resticm/password
      directories: [/etc, /home]
      hooks:
        pre_backup: /etc/resticm/hooks/pre-backup.sh
    command: backup
  register: backup

- name: Show the new snapshot
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: snapshot {{ backup.snapshot_id }}"

- name: Apply the retention policy (changed only when snapshots were removed)
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: forget

- name: Restore the previous snapshot's /etc/nginx from the mirror if the primary is gone
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: restore
    snapshot: latest~1
    target: /srv/restore
    include: [/etc/nginx]
"""

RETURN = r"""
changed:
  description: A snapshot was created, or snapshots were forgotten (in check mode, would be).
  returned: always
  type: bool
  sample: true
snapshot_id:
  description: Short ID of the snapshot the backup wrote; null when none was written.
  returned: always
  type: str
  sample: 1a2b3c4d
exit_code:
  description: The exit code C(resticm) would have (0 ok, 1 failed, 3 partial, 75 lock held).
  returned: always
  type: int
  sample: 0
report:
  description:
    - The run report (C(RunReport.to_dict())) with every phase, hook and restic step;
      secrets are redacted. Empty when the configuration could not be loaded.
  returned: always
  type: dict
  sample:
    command: backup
    host: web1
    exit_code: 0
    ok: true
    snapshot_id: 1a2b3c4d
    errors: []
    steps:
      - name: backup
        repository: primary
        outcome: ok
forgotten:
  description: Short IDs of the snapshots forget removed (or would remove in check mode).
  returned: when command is forget
  type: list
  elements: str
  sample: [d426ae7f]
snapshots:
  description: This host's snapshots as C(restic snapshots --json) prints them.
  returned: when command is snapshots
  type: list
  elements: dict
restored_from:
  description: The repository C(restore) used (C(primary) or a backend name).
  returned: when command is restore
  type: str
  sample: s3
files_restored:
  description: Entries (files and directories) restored, or that would be in check mode.
  returned: when command is restore
  type: int
  sample: 42
msg:
  description: What failed, one line per error.
  returned: on failure
  type: str
  sample: "pre_backup hook /etc/resticm/hooks/pre-backup.sh failed: exit 1"
"""

# Importing AnsibleModule here marks this file as a new-style module for Ansible,
# which then passes the task's arguments the way AnsibleModule reads them.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402,F401


def main() -> None:
    try:
        from resticm_core.ansible_module import main as run
    except ImportError as exc:
        # Answer in the module protocol directly: a clear message, no traceback.
        import json
        import sys

        print(
            json.dumps(
                {
                    "failed": True,
                    "msg": f"resticm_core is not installed for {sys.executable}: {exc}",
                }
            )
        )
        sys.exit(1)
    run()


if __name__ == "__main__":
    main()
