"""The one exception type that reaches the user as a message instead of a traceback."""


class RunnerError(Exception):
    """A problem with the user's input: config, data, checkpoint, device.

    The message names the problem and the fix; the CLI prints it without a traceback
    (unless HYDRA_FULL_ERROR=1) and exits with `exit_code`.
    """

    exit_code = 1
