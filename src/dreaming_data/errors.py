"""The one exception type for user mistakes: printed as one line, never as a traceback."""


class UserError(Exception):
    """Bad input from the user (a params key, a data file, an archive): say what and where, in one line."""


INTERRUPTED = "interrupted; rerun the stage to resume from its last checkpoint"  # Ctrl-C or SIGTERM, in one line
