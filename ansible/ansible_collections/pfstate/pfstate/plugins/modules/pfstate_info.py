#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pfstate developers
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pfstate_info
short_description: Read pfstate's status of a gateway
description:
  - Runs C(pfstate status) and returns each entry with its packet and byte counters and active
    connections, whether the live rules or sysctls drifted from the applied state, and a pending
    confirmation of an C(apply --confirm), from pfstate's JSON output (format_version 1).
  - Drift is reported, never a failure; the module changes nothing.
version_added: 0.1.0
author:
  - pfstate developers
options:
  src:
    description:
      - Compare with these desired-state files instead of the applied C(/etc/pfstate/host.yaml).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - action_common_attributes
  - pfstate.pfstate.host
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: pfstate.pfstate.pfstate
'''

EXAMPLES = r'''
- name: Read the status
  pfstate.pfstate.pfstate_info:
  register: gw

- name: Fail on drift
  ansible.builtin.assert:
    that: not gw.drift
'''

RETURN = r'''
drift:
  description: The live rules or sysctls differ from the applied state.
  returned: success
  type: bool
applied:
  description: A state is applied on the host.
  returned: success
  type: bool
entries:
  description: Every entry with C(name), C(kind), C(packets), C(bytes) and C(connections).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "web", "kind": "forward", "packets": 120, "bytes": 7200, "connections": 3}]
confirm:
  description: A pending confirmation (deadline, remaining seconds), or null.
  returned: success
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfstate.pfstate.plugins.module_utils import cli


def main():
    spec = cli.common_argument_spec()
    spec.update(src=dict(type='list', elements='path', default=[]))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    rc, doc = cli.run(module, cli.base_argv(module) + ['status'] + module.params['src'])
    if not doc.get('ok'):
        cli.fail(module, rc, doc)
    cli.warn_all(module, doc)
    module.exit_json(
        changed=False,
        drift=bool(doc.get('drift')),
        applied=bool(doc.get('applied')),
        entries=doc.get('entries') or [],
        confirm=doc.get('confirm'),
    )


if __name__ == '__main__':
    main()
