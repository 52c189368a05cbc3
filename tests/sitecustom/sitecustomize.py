"""Loaded by every `runner` subprocess the tests start (conftest puts this folder on PYTHONPATH).

1. No test may download anything: every URL open fails at once, as on a machine with no
   network, so the offline code paths run for real and a test can never fetch a dataset.
   With RUNNER_TEST_BROKEN_DOWNLOAD=FILE set, an open instead answers with a download that
   breaks off after 100 kB (as a dropped connection does), after writing FILE to say it began.
2. torchvision's CIFAR10 checks the md5 of each batch file (and of batches.meta) against the official release.
   The tests write tiny files in the official format, which cannot match those sums, so the
   check is bypassed here, and only here. Everything else about loading them is real.
3. With TEST_SIGNAL_ON_IMPORT=MODULE:SIGNAL, the process sends itself SIGNAL (through the kernel, as a `kill`
   from outside) when MODULE starts being imported, however deep in another import that happens
   (numpy: inside `import torch`). Not RUNNER_-prefixed, so the fork server refuses such a command and
   it starts as a fresh process, where the imports really happen (tests/helpers/zygote.py).
"""

import importlib.abc
import importlib.machinery
import os
import sys
import typing


def _no_network(request, *args, **kwargs):
    import urllib.error

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


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patch modules right after they load: importing them here (urllib.request pulls in ssl) would slow every
    start, and widen the moment before `runner` can record a signal (tests/test_signals.py)."""

    PATCHES: typing.ClassVar = {
        "urllib.request": lambda module: setattr(module, "urlopen", _no_network),
        # the file must exist; its md5 is not checked
        "torchvision.datasets.cifar": lambda module: setattr(
            module, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath)
        ),
    }

    def find_spec(self, name, path, target=None):
        if name not in self.PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            self.PATCHES[name](module)

        spec.loader.exec_module = exec_and_patch
        return spec


if "urllib.request" in sys.modules:
    sys.modules["urllib.request"].urlopen = _no_network
sys.meta_path.insert(0, _PatchOnImport())


class _SignalOnImport(importlib.abc.MetaPathFinder):
    """Send this process a signal when a module's import begins (item 3 of the docstring), once."""

    def __init__(self, module, sig):
        self.module, self.sig = module, sig

    def find_spec(self, name, path, target=None):
        if name == self.module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), getattr(signal, self.sig))
        return None


if os.environ.get("TEST_SIGNAL_ON_IMPORT"):
    import signal

    sys.meta_path.insert(0, _SignalOnImport(*os.environ["TEST_SIGNAL_ON_IMPORT"].split(":")))
