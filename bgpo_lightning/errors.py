"""Errors that the command line reports as one line instead of a traceback."""


class ConfigError(ValueError):
    """A configuration value is invalid: an unknown name, a bad combination, a missing path."""
