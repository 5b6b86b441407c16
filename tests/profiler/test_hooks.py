"""Process hooks the Python layer installs, checked with the real native module: thread
renames reach the profile, the SIGTERM handler and the sys.monitoring tool are released on
stop, another free monitoring tool id is used when the profiler's is taken, and fork hooks
stay quiet when no profiler runs."""

import textwrap

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P


def run_code(runner, interp, code, prefix_label="hooks", env_extra=None):
    prefix = runner.new_prefix(prefix_label)
    script = prefix.parent / "script.py"
    # The harness reads a JSON "truth" line with the pid from stdout.
    script.write_text(textwrap.dedent(code) + "\nimport json, os\nprint(json.dumps({'pid': os.getpid()}))\n")
    env = H.base_env(interp)
    env["DD_PROFILING_OUTPUT_PPROF"] = str(prefix)
    env["DD_PROFILING_UPLOAD_INTERVAL"] = "60"
    env.update(env_extra or {})
    r = H.run([str(interp.path), str(script)], env, prefix)
    return r


def test_renamed_thread_name_reaches_the_profile(runner, interp):
    r = run_code(runner, interp, """
        import threading, time
        from emberscope.profiling import Profiler
        p = Profiler(service="hooks")
        p.start()
        def spin(stop):
            while not stop.is_set():
                sum(range(1000))
        stop = threading.Event()
        t = threading.Thread(target=spin, args=(stop,), name="before-rename")
        t.start()
        t.name = "after-rename"
        time.sleep(1.0)
        stop.set(); t.join()
        p.stop(flush=True)
        """)
    r.check_ok()
    names = set()
    for prof in C.check_files(r, r.main_pid):
        for s in prof.samples:
            names.add(s.labels.get("thread name"))
    assert "after-rename" in names, names


def test_sigterm_handler_is_removed_on_stop(runner, interp):
    r = run_code(runner, interp, """
        import signal
        from emberscope.profiling import Profiler
        p = Profiler(service="hooks")
        p.start()
        print("during", signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
        p.stop(flush=True)
        print("after", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        """)
    r.check_ok()
    assert "during True" in r.stdout and "after True" in r.stdout, r.describe()


def test_fork_without_profiler_runs_no_hooks(runner, interp):
    r = run_code(runner, interp, """
        import os
        from emberscope.profiling import Profiler
        p = Profiler(service="hooks")
        p.start(); p.stop(flush=True)
        pid = os.fork()
        if pid == 0:
            from emberscope import _native
            os._exit(3 if _native.is_running() else 0)
        _, status = os.waitpid(pid, 0)
        print("child-exit", os.WEXITSTATUS(status))
        """)
    r.check_ok()
    assert "child-exit 0" in r.stdout, r.describe()


def _monitoring_script(occupy):
    return """
        import sys
        if %r:
            sys.monitoring.use_tool_id(sys.monitoring.PROFILER_ID, "someone-else")
        from emberscope.profiling import Profiler
        p = Profiler(service="hooks", exception_sampling_interval=1)
        p.start()
        class Boom(Exception):
            pass
        for i in range(200):
            try:
                raise Boom(i)
            except Boom:
                pass
        ids = [i for i in range(6) if sys.monitoring.get_tool(i) == "emberscope"]
        p.stop(flush=True)
        left = [i for i in range(6) if sys.monitoring.get_tool(i) == "emberscope"]
        print("ids", ids, "left", left)
        """ % occupy


@pytest.mark.parametrize("occupy", [False, True], ids=["free", "profiler-id-taken"])
def test_monitoring_tool_used_and_released(runner, interp, occupy):
    if tuple(int(x) for x in interp.version.split(".")[:2]) < (3, 12):
        pytest.skip("sys.monitoring exists from 3.12 (older versions use the tp_new hook)")
    r = run_code(runner, interp, _monitoring_script(occupy))
    r.check_ok()
    line = [l for l in r.stdout.splitlines() if l.startswith("ids")][0]
    assert "left []" in line, line
    assert "ids []" not in line, line
    total = P.total(C.check_files(r, r.main_pid), "exception-samples")
    assert 150 <= total <= 260, "exception-samples %d for 200 raises at interval 1" % total
