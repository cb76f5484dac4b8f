#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pfstate developers
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pfstate
short_description: Converge a Linux gateway's port forwards, NAT and filter rules with pfstate
description:
  - Runs C(pfstate apply) on the managed host with one or more desired-state files, or with a
    state given inline, and reports what changed from pfstate's JSON output (format_version 1).
  - pfstate writes only the iptables chains it owns (C(PFSTATE-*)), one jump per built-in chain,
    the sysctls the rules need, its three files and its boot unit; rules of Docker, libvirt,
    Kubernetes, ufw or firewalld are never touched.
  - In check mode it runs C(pfstate plan); in diff mode it shows the owned rules, sysctls, files
    and unit state before and after.
  - With O(confirm), the change is put back by the host itself unless it is confirmed in time;
    the action plugin confirms once the host answers over a new connection (see O(confirm_auto)).
version_added: 0.1.0
author:
  - pfstate developers
requirements:
  - pfstate on the managed host (the P(pfstate.pfstate.gateway#role) role installs it)
options:
  src:
    description:
      - Desired-state files or directories on the managed host. Several files make one state;
        a directory stands for its C(*.yaml) files in name order.
      - Duplicate entry names across files are errors.
    type: list
    elements: path
    default: []
  content:
    description:
      - A desired state as YAML text, added after O(src). It is written to a private temporary
        file named O(content_name), so errors read C(NAME:LINE:COL).
    type: str
  content_name:
    description:
      - File name under which O(content) is checked and reported.
    type: str
    default: host.yaml
  state:
    description:
      - V(present) converges the host to the files.
      - V(absent) runs C(pfstate remove) (every owned chain and jump, the files and the unit).
      - V(confirmed) runs C(pfstate confirm), keeping a change applied with O(confirm).
    type: str
    choices: [present, absent, confirmed]
    default: present
  confirm:
    description:
      - Apply with C(--confirm), for example V(60s) or V(2m). Unless C(pfstate confirm) arrives
        within that time, the host puts pfstate's own objects back as they were, even when the
        connection that applied the change is gone. Changes other programs made meanwhile stay.
    type: str
  confirm_auto:
    description:
      - With O(confirm), confirm in the same task once the host answers over a new connection.
      - V(false) only arms the deadline, so that later tasks can test the change and a task with
        O(state=confirmed) keeps it.
    type: bool
    default: true
extends_documentation_fragment:
  - action_common_attributes
  - pfstate.pfstate.host
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - "Failures carry pfstate's error records; each problem in a file reads C(FILE:LINE:COL: message),
    and a failed apply leaves the host as it was."
seealso:
  - module: pfstate.pfstate.pfstate_info
'''

EXAMPLES = r'''
- name: Converge the gateway to its state file
  pfstate.pfstate.pfstate:
    src: /etc/pfstate/site.yaml

- name: A role's defaults and the host's own entries make one state
  pfstate.pfstate.pfstate:
    src:
      - /etc/pfstate/conf.d
    content: "{{ lookup('template', 'host.yaml.j2') }}"

- name: Apply over SSH with a safety net; confirmed once the host answers again
  pfstate.pfstate.pfstate:
    src: /etc/pfstate/site.yaml
    confirm: 60s

- name: Arm the deadline only; keep the change in a later task after checks
  pfstate.pfstate.pfstate:
    src: /etc/pfstate/site.yaml
    confirm: 5m
    confirm_auto: false

- name: Keep it
  pfstate.pfstate.pfstate:
    state: confirmed
'''

RETURN = r'''
changes:
  description: What changed (or would change), one record per entry, sysctl, file or unit.
  returned: state is present or absent
  type: list
  elements: dict
  sample: [{"entry": "web", "kind": "forward", "action": "add"}]
before:
  description: pfstate's owned rules, sysctls, files and unit state before the change.
  returned: state is present or absent
  type: dict
after:
  description: The same after the change.
  returned: state is present or absent
  type: dict
confirm:
  description: The pending confirmation (deadline) of an apply with O(confirm).
  returned: when O(confirm) armed a deadline
  type: dict
  sample: {"deadline": "2026-12-06T03:14:15Z", "deadline_unix": 1796526855, "seconds": 60, "revert": "systemd-timer"}
confirmed:
  description: The confirmation that was kept (O(state=confirmed), or O(confirm) with O(confirm_auto)).
  returned: when a confirmation was kept
  type: dict
errors:
  description: pfstate's error records, with file, line and column where the error is in a file.
  returned: failure
  type: list
  elements: dict
  sample: [{"file": "host.yaml", "line": 7, "column": 12, "message": "unknown protocol `tcpp`"}]
'''

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfstate.pfstate.plugins.module_utils import cli


def diff_sections(before, after):
    """Ansible's diff mode records, one per part of the state that differs."""
    sections = []

    def add(name, a, b):
        if a != b:
            sections.append(dict(before_header=name, after_header=name,
                                 before=a or '', after=b or ''))

    for fam in ('ipv4', 'ipv6'):
        add('%s rules' % fam, (before.get('rules') or {}).get(fam),
            (after.get('rules') or {}).get(fam))
    add('sysctls', sysctl_text(before.get('sysctls')), sysctl_text(after.get('sysctls')))
    files_b = before.get('files') or {}
    files_a = after.get('files') or {}
    for path in sorted(set(files_b) | set(files_a)):
        add(path, files_b.get(path), files_a.get(path))
    add('unit', unit_text(before.get('unit')), unit_text(after.get('unit')))
    return sections


def sysctl_text(values):
    return ''.join('%s = %s\n' % (k, '(absent)' if v is None else v)
                   for k, v in sorted((values or {}).items()))


def unit_text(units):
    return ''.join('%s: %s\n' % (k, v or 'unknown') for k, v in sorted((units or {}).items()))


def state_files(module, tmpdir):
    """The files to hand to pfstate: O(src), then O(content) in a private file."""
    files = list(module.params['src'])
    if module.params.get('content') is not None:
        name = os.path.basename(module.params['content_name']) or 'host.yaml'
        path = os.path.join(tmpdir, name)
        with open(path, 'w') as f:
            f.write(module.params['content'])
        files.append(path)
    if not files:
        module.fail_json(msg='give the desired state: src, content or both')
    return files


def converge(module):
    tmpdir = tempfile.mkdtemp(prefix='pfstate-ansible-')
    try:
        files = state_files(module, tmpdir)
        argv = cli.base_argv(module)
        if module.check_mode:
            argv += ['plan']
        else:
            argv += ['apply']
            if module.params.get('confirm'):
                argv += ['--confirm', module.params['confirm']]
        # Relative names inside the private directory: errors read NAME:LINE:COL.
        argv += [os.path.relpath(f, tmpdir) if f.startswith(tmpdir + os.sep) else f for f in files]
        rc, doc = cli.run(module, argv, cwd=tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return rc, doc


def remove(module):
    argv = cli.base_argv(module) + ['remove']
    if module.check_mode:
        argv += ['--dry-run']
    return cli.run(module, argv)


def confirm(module):
    if module.check_mode:
        rc, doc = cli.run(module, cli.base_argv(module) + ['status'])
        pending = doc.get('confirm')
        if not pending:
            doc = dict(doc, ok=False, errors=[dict(file=None, line=None, column=None,
                                                   message='nothing to confirm: no apply --confirm is pending')])
            cli.fail(module, 1, doc)
        module.exit_json(changed=True, confirmed=pending)
    rc, doc = cli.run(module, cli.base_argv(module) + ['confirm'])
    if not doc.get('ok'):
        cli.fail(module, rc, doc)
    cli.warn_all(module, doc)
    module.exit_json(changed=bool(doc.get('changed')), confirmed=doc.get('confirmed'))


def main():
    spec = cli.common_argument_spec()
    spec.update(
        src=dict(type='list', elements='path', default=[]),
        content=dict(type='str'),
        content_name=dict(type='str', default='host.yaml'),
        state=dict(type='str', default='present', choices=['present', 'absent', 'confirmed']),
        confirm=dict(type='str'),
        confirm_auto=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    state = module.params['state']
    if state == 'confirmed':
        confirm(module)
    rc, doc = remove(module) if state == 'absent' else converge(module)
    if not doc.get('ok'):
        cli.fail(module, rc, doc, changes=doc.get('changes') or [])
    cli.warn_all(module, doc)
    result = dict(
        changed=bool(doc.get('changed')),
        changes=doc.get('changes') or [],
        before=doc.get('before') or {},
        after=doc.get('after') or {},
    )
    if doc.get('confirm'):
        result['confirm'] = doc['confirm']
    if module._diff and result['changed']:
        result['diff'] = diff_sections(result['before'], result['after'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
