# -*- coding: utf-8 -*-
# Copyright: pfstate developers
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Controller side of pfstate.pfstate.pfstate: confirm a change once the host answers again.

The module applies with `--confirm DURATION`, and from then on the host reverts by itself at
the deadline. Whether the change cut the controller off is only known from the controller: so
this plugin drops the connection that applied the change (an SSH ControlPersist master would
hide a broken firewall), opens a new one, and runs `pfstate confirm` through it. If no new
connection gets through before the deadline, the task fails and the host puts its previous
state back on its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

MODULE = 'pfstate.pfstate.pfstate'
# Leave the host this much time before its deadline: a confirm that arrives while the revert
# already runs would be refused anyway.
MARGIN_SECONDS = 2


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        result.update(self._execute_module(module_name=MODULE, module_args=args,
                                           task_vars=task_vars))
        pending = result.get('confirm')
        wanted = args.get('confirm') and self._bool(args.get('confirm_auto', True))
        if not wanted or not pending or result.get('failed') or self._play_context.check_mode:
            return result
        return self._confirm(result, args, pending, task_vars)

    @staticmethod
    def _bool(value):
        if isinstance(value, str):
            return value.strip().lower() in ('1', 'true', 'yes', 'on')
        return bool(value)

    def _confirm(self, result, args, pending, task_vars):
        confirm_args = dict(state='confirmed')
        for key in ('binary', 'root'):
            if args.get(key):
                confirm_args[key] = args[key]
        # The controller's clock, not the host's: only the duration is shared.
        until = time.time() + max(int(pending.get('seconds', 0)) - MARGIN_SECONDS, 1)
        last = 'no attempt'
        while time.time() < until:
            try:
                self._connection.reset()
                answer = self._execute_module(module_name=MODULE, module_args=confirm_args,
                                              task_vars=task_vars)
            except AnsibleConnectionFailure as e:
                last = str(e)
                time.sleep(1)
                continue
            if answer.get('unreachable'):
                last = answer.get('msg', 'unreachable')
                time.sleep(1)
                continue
            if answer.get('failed'):
                result.update(failed=True, msg='the change was applied but confirming it failed: %s'
                              % answer.get('msg'))
                return result
            result['confirmed'] = answer.get('confirmed')
            return result
        result.update(failed=True, msg=(
            'the host did not answer over a new connection after the change (%s); '
            'pfstate puts its previous state back at %s' % (last, pending.get('deadline'))))
        return result
