"""The one exception type that reaches the user as a message instead of a traceback, and its warning."""


class RunnerError(Exception):
    """A problem with the user's input: config, data, checkpoint, device.

    The message names the problem and the fix; the CLI prints it without a traceback
    (unless HYDRA_FULL_ERROR=1) and exits with `exit_code`.
    """

    exit_code = 1


class Interrupted(RunnerError):
    """SIGINT or SIGTERM: the run saved last.pt and stopped; `runner train resume=DIR` continues it."""

    exit_code = 130  # the shell's code for a Ctrl-C'd command


class Diverged(RunnerError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class RunnerWarning(UserWarning):
    """Something the user should know that does not stop the run (a cache rebuilt or not written).

    Raised with warnings.warn deep in data code; a job relays it to its console and log
    (RunConsole.relay_warnings)."""
