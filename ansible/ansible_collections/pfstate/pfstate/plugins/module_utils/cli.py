# -*- coding: utf-8 -*-
# Copyright: pfstate developers
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Run the pfstate command line and read its JSON contract (docs/json.md, format_version 1).

Everything the modules know about pfstate goes through here: where the binary is, which
arguments a command takes, how an answer is read, and how errors become a failure message
that keeps pfstate's FILE:LINE:COL positions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# The contract version these modules understand; a newer pfstate only adds fields.
FORMAT_VERSION = 1

# Where a role or a package installs pfstate, besides PATH.
BIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/usr/local/bin', '/usr/bin']


def common_argument_spec():
    """Options every pfstate module takes."""
    return dict(
        binary=dict(type='path'),
        root=dict(type='path'),
    )


def find_binary(module):
    path = module.params.get('binary')
    if path:
        return path
    return module.get_bin_path('pfstate', required=True, opt_dirs=BIN_DIRS)


def base_argv(module):
    argv = [find_binary(module), '--format', 'json', '--color', 'never']
    if module.params.get('root'):
        argv += ['--root', module.params['root']]
    return argv


def run(module, argv, cwd=None):
    """Run pfstate; return (rc, document). A missing or unreadable document fails the task."""
    rc, out, err = module.run_command(argv, cwd=cwd)
    doc = parse(out)
    if doc is None:
        module.fail_json(
            msg='pfstate printed no JSON document (exit code %d): %s' % (rc, (err or out).strip()),
            rc=rc, stdout=out, stderr=err, cmd=argv)
    if doc.get('format_version') != FORMAT_VERSION:
        module.fail_json(
            msg='pfstate speaks JSON format_version %r; this collection reads %d'
                % (doc.get('format_version'), FORMAT_VERSION),
            rc=rc, cmd=argv)
    return rc, doc


def parse(stdout):
    """The JSON object pfstate printed (its last non-empty line), or None."""
    for line in reversed((stdout or '').splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None
    return None


def error_lines(doc):
    """pfstate's error records as the text mode prints them: FILE:LINE:COL: message."""
    lines = []
    for e in doc.get('errors') or []:
        where = ''
        if e.get('file'):
            where = e['file']
            if e.get('line'):
                where += ':%d' % e['line']
                if e.get('column'):
                    where += ':%d' % e['column']
            where += ': '
        lines.append(where + (e.get('message') or ''))
    return lines


def fail(module, rc, doc, **extra):
    """Fail the task with pfstate's own words, keeping the structured records too."""
    lines = error_lines(doc) or ['pfstate failed with exit code %d' % rc]
    for w in doc.get('warnings') or []:
        module.warn(w)
    module.fail_json(msg='\n'.join(lines), rc=rc, errors=doc.get('errors') or [],
                     changed=bool(doc.get('changed')), **extra)


def warn_all(module, doc):
    for w in doc.get('warnings') or []:
        module.warn(w)
