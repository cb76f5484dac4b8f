# The options every module of the collection takes to reach pfstate on the managed host.
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  binary:
    description:
      - Path of the pfstate binary on the managed host; by default looked up in PATH and the sbin
        directories.
    type: path
  root:
    description:
      - Passed as C(--root); every file pfstate reads or writes goes under this directory.
    type: path
'''
