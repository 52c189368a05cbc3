"""Loaded by every `runner` subprocess the tests start (conftest puts this folder on PYTHONPATH).

1. No test may download anything: every URL open fails at once, as on a machine with no
   network, so the offline code paths run for real and a test can never fetch a dataset.
2. torchvision's CIFAR10 checks the md5 of each batch file (and of batches.meta) against the official release.
   The tests write tiny files in the official format, which cannot match those sums, so the
   check is bypassed here, and only here. Everything else about loading them is real.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import urllib.error
import urllib.request


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("network disabled in runner's tests")


urllib.request.urlopen = _no_network


class _SkipCifarMd5(importlib.abc.MetaPathFinder):
    """Patch CIFAR10 right after torchvision loads it (importing torchvision here would slow every start)."""

    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.cifar":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)  # the file must exist; its md5 is not checked

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _SkipCifarMd5())
