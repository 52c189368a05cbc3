"""The decoded-tensor cache: a dataset decoded once and saved beside its raw files (runner-cache/).

The key is a hash of the raw files' names, sizes and modification times, so the next run
skips decoding and a changed file rebuilds the cache.
"""

import hashlib

from runner.errors import RunnerError
from runner.serialization import safe_load, save


def fingerprint(files, *extra):
    """A short hash of the files' names, sizes and modification times (and `extra`)."""
    h = hashlib.sha1(repr(extra).encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached(cache_file, build):
    """`build()` (a dict of tensors and plain data), saved to `cache_file` and loaded from it next time."""
    if cache_file.is_file():
        try:
            return safe_load(cache_file)
        except RunnerError:
            pass  # a damaged cache is rebuilt, never trusted
    data = build()
    try:
        save(data, cache_file)
        for stale in cache_file.parent.glob(cache_file.name.rsplit("-", 1)[0] + "-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only data root still works, only slower next time
    return data
