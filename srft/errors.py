"""The one error family users see: the CLI prints the message on one line and exits 2."""


class SrftError(Exception):
    """A mistake in the user's input (config, data file, model path) that they can fix."""


class ConfigError(SrftError):
    """A config file or override that does not validate; the message names the key path."""


class DataError(SrftError):
    """A data file that cannot be used; the message names the file, the line and the fault."""


class GateFailure(SrftError):
    """A quality gate in `enforce` mode failed and its retries ran out."""
