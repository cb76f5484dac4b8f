# -*- coding: utf-8 -*-
# Copyright: pfstate developers
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A connection into a systemd sandbox of tests/support/sandbox.sh (test harness only).

Each test host is a real systemd as PID 1 in its own pid, mount, network, uts, ipc and cgroup
namespaces, with its own /etc (an overlay) and its own netns. Commands run through
`nsenter -t PID -a`, so they see the sandbox's /etc, /run, system bus and firewall, never the
machine's own. Files go through /proc/PID/root, which resolves paths in the sandbox's mounts
(they land in its private /tmp or its /etc overlay).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: nsenter
short_description: run tasks inside a pfstate test sandbox (systemd in namespaces)
description:
  - Test harness of the pfstate collection. The host address is the sandbox's state directory;
    its PID 1 is read from DIR/pid at every connect, so a rebooted sandbox is found again.
author: pfstate developers
options:
  remote_addr:
    description: The sandbox state directory.
    vars:
      - name: ansible_host
extends_documentation_fragment:
  - connection_pipelining
'''

import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):

    transport = 'nsenter'
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._pid = None

    def _sandbox_pid(self):
        state_dir = self.get_option('remote_addr')
        try:
            with open(os.path.join(state_dir, 'pid')) as f:
                pid = f.read().strip()
        except OSError as e:
            raise AnsibleConnectionFailure('sandbox %s: no pid file (%s)' % (state_dir, e))
        try:
            with open('/proc/%s/comm' % pid) as f:
                alive = f.read().strip() == 'systemd'
        except OSError:
            alive = False
        if not alive:
            raise AnsibleConnectionFailure('sandbox %s is not running' % state_dir)
        return pid

    def _connect(self):
        if not self._connected:
            self._pid = self._sandbox_pid()
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connect()
        env = {k: v for k, v in os.environ.items() if not k.startswith('DBUS_')}
        env['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        argv = ['nsenter', '-t', self._pid, '-a', '--', '/bin/sh', '-c', cmd]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd='/')
        out, err = p.communicate(to_bytes(in_data) if in_data is not None else None)
        return p.returncode, out, err

    def _inside(self, path):
        if not path.startswith('/'):
            raise AnsibleError('nsenter connection needs absolute paths, got %s' % path)
        return '/proc/%s/root%s' % (self._pid, path)

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        self._connect()
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        self._connect()
        shutil.copyfile(self._inside(in_path), out_path)

    def reset(self):
        self.close()

    def close(self):
        self._connected = False
        self._pid = None
