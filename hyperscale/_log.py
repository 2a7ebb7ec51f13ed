"""The ``⚡hyperscale`` logger and the progress bars.

The library never configures the root logger. It gives its own logger the level
INFO and a fallback handler. That handler writes to stderr only while no other
handler would receive the record. So the step messages show in a plain script or
a notebook, and nothing is printed twice once the application sets up logging.
"""

import logging
import sys

LOGGER_NAME = "⚡hyperscale"

logger = logging.getLogger(LOGGER_NAME)


class _FallbackHandler(logging.StreamHandler):
    """A stderr handler that stays silent when the application has its own handlers."""

    def emit(self, record):
        current = logger
        while current is not None:
            if any(handler is not self for handler in current.handlers):
                return
            if not current.propagate:
                break
            current = current.parent
        super().emit(record)

    @property
    def stream(self):
        # Look stderr up on every record: Jupyter and pytest replace sys.stderr.
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


if not any(isinstance(handler, _FallbackHandler) for handler in logger.handlers):
    _handler = _FallbackHandler()
    _handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(_handler)
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)


def log_step(verbose, message, *args):
    """Log one step at INFO, or at DEBUG when the caller asked for quiet output."""
    logger.log(logging.INFO if verbose else logging.DEBUG, message, *args)


def _tqdm_class():
    # A Jupyter kernel has imported IPython already; a script never pays for it.
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        try:
            shell = ipython.get_ipython()
            if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
                import ipywidgets  # noqa: F401  (the notebook bar needs it)
                from tqdm.notebook import tqdm as notebook_tqdm

                return notebook_tqdm
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


def progress_bar(enabled, total, description, unit):
    """Return a tqdm bar, or None when progress is switched off."""
    if not enabled:
        return None
    return _tqdm_class()(total=total, desc=description, unit=unit, unit_scale=True, leave=False)
