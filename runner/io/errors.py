"""The one exception type that reaches the user as a message instead of a traceback, and its warning."""

from __future__ import annotations


class RunnerError(Exception):
    """A problem with the user's input: config, data, checkpoint, device.

    The message names the problem and the fix; the CLI prints it without a traceback
    (unless HYDRA_FULL_ERROR=1) and exits with `exit_code`.
    """

    exit_code = 1


class Interrupted(RunnerError):
    """SIGINT or SIGTERM: the run saved last.pt and stopped; `runner train resume=DIR` continues it."""

    # the shell's code for a Ctrl-C'd command
    exit_code = 130


class Diverged(RunnerError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class RunnerWarning(UserWarning):
    """Something the user should know that does not stop the run (a cache rebuilt or not written).

    Raised with warnings.warn deep in data code; a job relays it to its console and log
    (RunConsole.relay_warnings)."""


# What a write refused by the storage means, and what to do about it, by errno name.
_STORAGE = {
    "ENOSPC": ("the disk is full", "Free some space"),
    "EDQUOT": ("the disk quota is used up", "Free some space or raise the quota"),
    "EFBIG": ("the file reached a file-size limit (ulimit -f)", "Raise the limit (ulimit -f unlimited)"),
    "EIO": ("the device reported an I/O error", "Check the disk (dmesg says which), or write elsewhere"),
    "EROFS": ("the file system is read-only", "Remount it read-write, or write elsewhere"),
    "EACCES": ("permission denied", "Make the folder writable, or write elsewhere"),
    "EPERM": ("the operation is not permitted", "Make the folder writable, or write elsewhere"),
}


# The errors only a write meets: any OSError with one of these errnos is a write the storage refused.
_WRITE_ONLY = ("ENOSPC", "EDQUOT", "EFBIG", "EROFS")


class StorageError(RunnerError):
    """A write the storage refused: a full disk (ENOSPC, EDQUOT), a file-size limit (EFBIG), a failing device (EIO), a
    read-only or unwritable place (EROFS, EACCES). Nothing written before is lost (runner replaces files atomically);
    a training run ends `interrupted`, its last.pt as it was, and resumes once the cause is gone."""

    # set by of(): the path, the errno and the problem without its last words (None on one raised otherwise)
    path: str | None = None
    errno: int | None = None
    problem: str | None = None

    @classmethod
    def of(cls, path: object, err: OSError, verb: str = "write") -> StorageError:
        """The one paragraph for `err`, an OSError raised while writing `path` (or doing `verb` to it): the path, the
        error, what to do."""
        import errno
        import os

        name = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
        meaning, fix = _STORAGE.get(name, ("it could not be written", "Make the location writable, or write elsewhere"))
        reason = err.strerror or (os.strerror(err.errno) if err.errno else str(err) or type(err).__name__)
        shown = f"{reason}, {name}" if name else reason
        problem = f"cannot {verb} {path} ({shown}): {meaning}. {fix}"
        found = cls(f"{problem}, then run the same command again.")
        # without its last words, for a caller that says itself what continues (a run: its resume command)
        found.path, found.errno, found.problem = str(path), err.errno, problem
        return found


def one_line(error: object, width: int | None = 300) -> str:
    """An error's text on one line for a message: its whitespace (line breaks too) collapsed to single spaces, cut at
    a word to at most `width` characters ending in "..." (None: never cut). `error` is an exception, a text or None."""
    text = " ".join(str("" if error is None else error).split())
    if width is None or len(text) <= width:
        return text
    cut = text[: width - 3]
    # at a word where one ends in the second half, else mid-word (a path or a hash has no spaces to cut at)
    at = cut.rfind(" ")
    return (cut[:at] if at > width // 2 else cut).rstrip() + "..."


def os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind `err`: itself, one of its causes (torch.save wraps it in RuntimeErrors), or one a library
    written in Rust names in its text (safetensors: "I/O error: No space left on device (os error 28)")."""
    import os
    import re

    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return cause
        found = re.search(r"\(os error (\d+)\)", str(cause))
        if found:
            return OSError(int(found.group(1)), os.strerror(int(found.group(1))))
        cause = behind(cause)
    return None


def behind(err: BaseException) -> BaseException | None:
    """The error `err` was raised from or while handling; None after `raise ... from None`, which says the earlier
    error is told in `err`'s own words (runner's refusals of a file it failed to read)."""
    if err.__cause__ is not None:
        return err.__cause__
    return None if err.__suppress_context__ else err.__context__


def storage_error(err: BaseException, path: object = None, where: object = None) -> RunnerError | None:
    """`err`, raised while writing `path`, told as a StorageError when an OSError is behind it (os_error_in); None for
    any other error. runner's own error (a RunnerError, a StorageError) is returned as it is, so that every caller
    tells or re-raises what this returns. Without `path` (where the write is not known: the CLI's
    funnel, a command's code that also reads) only the errors of _WRITE_ONLY count, and with `where` (the folder being
    written) those of _STORAGE; told with the OSError's own file name, else `where`."""
    import errno

    if isinstance(err, RunnerError):
        return err
    inner: BaseException | None = err
    # runner's own, wrapped by a library: OmegaConf re-raises a resolver's error `from None`, so its context is
    # followed here even where suppressed (a StorageError is told in its own words, whoever hid it)
    while inner is not None:
        if isinstance(inner, StorageError):
            return inner
        inner = inner.__cause__ or inner.__context__
    cause = os_error_in(err)
    if cause is None:
        return None
    if path is not None:
        return StorageError.of(path, cause)
    name = errno.errorcode.get(cause.errno or 0, "")
    # a full disk, a quota or a size limit, a read-only file system: only a write meets them. An I/O or permission
    # error may be a read's (a data file, a checkpoint): told as a storage stop ("make the folder writable", a run
    # ended interrupted to resume) only where `where` says a write was under way
    if name not in (_WRITE_ONLY if where is None else _STORAGE):
        return None
    verb = "write" if name in _WRITE_ONLY else "read or write"
    return StorageError.of(cause.filename or where or "a file", cause, verb=verb)
