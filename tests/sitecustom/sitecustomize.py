"""Loaded by every `runner` subprocess the tests start (conftest puts this folder on PYTHONPATH).

1. No test may download anything: every URL open fails at once, as on a machine with no
   network, so the offline code paths run for real and a test can never fetch a dataset.
   With RUNNER_TEST_BROKEN_DOWNLOAD=FILE set, an open instead answers with a download that
   breaks off after 100 kB (as a dropped connection does), after writing FILE to say it began.
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


def _no_network(request, *args, **kwargs):
    marker = os.environ.get("RUNNER_TEST_BROKEN_DOWNLOAD")
    if not marker:
        raise urllib.error.URLError("network disabled in runner's tests")
    return _BrokenDownload(getattr(request, "full_url", request), marker)


class _BrokenDownload:
    """A response that serves 100 kB of zeros and then fails as a connection reset mid-download would."""

    def __init__(self, url, marker):
        self.url, self.length, self.marker, self.served = url, 10_000_000, marker, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, size=-1):
        if self.served >= 100_000:
            raise ConnectionResetError("connection reset by peer (runner's tests)")
        self.served += size
        with open(self.marker, "a") as f:
            f.write(f"{self.url} {self.served}\n")
        return b"\0" * size


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
            module.check_integrity = lambda fpath, md5=None: os.path.isfile(
                fpath
            )  # the file must exist; its md5 is not checked

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _SkipCifarMd5())
