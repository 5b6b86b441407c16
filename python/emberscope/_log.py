"""Logging helpers for the emberscope Python layer.

Every problem the Python layer meets is reported as a single warning on the
``emberscope`` logger.  When the application has not configured logging (no
handler anywhere up the logger chain), the same message is also written to
stderr as exactly one line prefixed with ``emberscope: ``.  Nothing in this
module ever raises.
"""

import logging
import os
import sys

LOGGER_NAME = "emberscope"
PREFIX = "emberscope: "

logger = logging.getLogger(LOGGER_NAME)
# A NullHandler stops logging's "last resort" handler from printing the
# record a second time when the application configured nothing; we print
# the stderr line ourselves in that case.
if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
    logger.addHandler(logging.NullHandler())

_TRUE = ("1", "true", "yes", "on")
_seen = set()
_debug_handler = None


def _logging_configured():
    """True when a real (non-null) handler would receive our records."""
    lg = logger
    while lg is not None:
        for handler in lg.handlers:
            if not isinstance(handler, logging.NullHandler):
                return True
        if not lg.propagate:
            return False
        lg = lg.parent
    return False


def _one_line(text):
    return " ".join(str(text).splitlines()).strip()


def _stderr(line):
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(PREFIX + line + "\n")
        stream.flush()
    except Exception:
        pass


def warn(msg, *args):
    """Log one warning line; never raises."""
    try:
        text = _one_line(msg % args if args else msg)
    except Exception:
        try:
            text = _one_line("%s %r" % (msg, args))
        except Exception:
            return
    try:
        logger.warning("%s", text)
    except Exception:
        pass
    try:
        if not _logging_configured():
            _stderr(text)
    except Exception:
        pass


def warn_once(msg, *args):
    """Like :func:`warn`, but a given message is emitted once per process."""
    try:
        text = _one_line(msg % args if args else msg)
    except Exception:
        return
    if text in _seen:
        return
    _seen.add(text)
    warn("%s", text)


def debug(msg, *args):
    try:
        logger.debug(msg, *args)
    except Exception:
        pass


def debug_enabled_in_env(environ=None):
    env = os.environ if environ is None else environ
    return env.get("EMBERSCOPE_DEBUG", "").strip().lower() in _TRUE


def enable_debug():
    """Send DEBUG and above of the emberscope logger to stderr."""
    global _debug_handler
    try:
        if _debug_handler is not None:
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PREFIX + "%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        _debug_handler = handler
    except Exception:
        pass


if debug_enabled_in_env():
    enable_debug()
