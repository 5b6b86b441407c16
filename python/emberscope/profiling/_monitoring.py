"""Exception sampling through ``sys.monitoring`` (CPython 3.12+).

Registers a ``sys.monitoring`` tool named ``emberscope`` whose RAISE callback
is the native ``on_raise``. Event names are used, never numbers.
"""

import sys

from emberscope import _log

TOOL_NAME = "emberscope"


def available():
    return getattr(sys, "monitoring", None) is not None


def _candidate_ids(mon):
    preferred = getattr(mon, "PROFILER_ID", 2)
    reserved = (getattr(mon, "DEBUGGER_ID", 0), getattr(mon, "COVERAGE_ID", 1))
    ids = [preferred]
    for tool_id in range(6):
        if tool_id not in reserved and tool_id not in ids:
            ids.append(tool_id)
    return ids


def register(callback):
    """Register the RAISE callback; returns the tool id or None."""
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return None
    for tool_id in _candidate_ids(mon):
        try:
            if mon.get_tool(tool_id) is not None:
                continue
            mon.use_tool_id(tool_id, TOOL_NAME)
        except Exception:
            continue
        try:
            mon.register_callback(tool_id, mon.events.RAISE, callback)
            mon.set_events(tool_id, mon.events.RAISE)
        except Exception as exc:
            _log.warn("could not enable exception sampling via sys.monitoring: %s", exc)
            unregister(tool_id)
            return None
        return tool_id
    _log.warn("no free sys.monitoring tool id (profiler and free ids are taken); "
              "exception sampling disabled")
    return None


def unregister(tool_id):
    mon = getattr(sys, "monitoring", None)
    if mon is None or tool_id is None:
        return
    try:
        if mon.get_tool(tool_id) != TOOL_NAME:
            return
    except Exception:
        return
    for step in (lambda: mon.set_events(tool_id, mon.events.NO_EVENTS),
                 lambda: mon.register_callback(tool_id, mon.events.RAISE, None),
                 lambda: mon.free_tool_id(tool_id)):
        try:
            step()
        except Exception:
            pass
