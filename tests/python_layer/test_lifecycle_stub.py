"""Profiler lifecycle against a recording stand-in of the native extension.

The real ``emberscope._native`` is not needed: ``stub_native.py`` is put in
``sys.modules`` of a child interpreter and records every call the Python
layer makes (start/stop, thread names, fork hooks, fallback ticks,
sys.monitoring callbacks).
"""

import json
import os
import signal
import sys
import textwrap

import pytest

from pyl_helpers import HERE, available_interpreters, run, stderr_lines
from stub_native import read_log

PREAMBLE = textwrap.dedent("""\
    import sys
    sys.path.insert(0, %r)
    import stub_native
    sys.modules["emberscope._native"] = stub_native
    """ % HERE)


def run_script(tmp_path, body, stub_log, start=None, python=None, extra=None, timeout=60):
    script = tmp_path / "script.py"
    script.write_text(PREAMBLE + textwrap.dedent(body))
    env = {"STUB_LOG": stub_log}
    if start is not None:
        env["STUB_START"] = json.dumps(start)
    env.update(extra or {})
    result = run([python or sys.executable, str(script)], extra_env=env, timeout=timeout)
    return result, read_log(stub_log)


def calls(log, name, pid=None):
    return [c for c in log if c["call"] == name and (pid is None or c["pid"] == pid)]


def test_start_stop_passes_the_config_and_names_threads(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import threading, time
        from emberscope.profiling import Profiler
        ready = threading.Event(); go = threading.Event()
        pre = threading.Thread(target=lambda: (ready.set(), go.wait()), name="pre-existing")
        pre.start(); ready.wait()
        p = Profiler(service="svc", output_pprof="/tmp/x", upload_interval=2)
        assert p.start() is True
        assert p.sampler == "native"
        t = threading.Thread(target=lambda: None, name="worker-1"); t.start(); t.join()
        go.set(); pre.join()
        renamed = threading.Thread(target=lambda: time.sleep(0.2), name="before")
        renamed.start(); renamed.name = "after"; renamed.join()
        assert renamed.name == "after"
        p.stop(flush=True)
        print("ok")
        """, stub_log)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""
    (start,) = calls(log, "start")
    assert start["config"]["service"] == "svc"
    assert start["config"]["output_pprof"] == "/tmp/x"
    assert start["config"]["upload_interval"] == 2.0
    assert sorted(start["config"]) == sorted([
        "service", "env", "version", "tags", "output_pprof", "upload_interval", "max_frames",
        "max_time_usage_pct", "max_sampling_hz", "timeline", "stack", "stack_v2", "exception",
        "exception_sampling_interval", "agent_url", "api_timeout_ms", "code_provenance"])
    names = [c["name"] for c in calls(log, "set_thread_name")]
    for expected in ("MainThread", "pre-existing", "worker-1", "before", "after"):
        assert expected in names, names
    worker = [c for c in calls(log, "set_thread_name") if c["name"] == "worker-1"][0]
    assert worker["thread"] == worker["ident"]  # registered from the new thread itself
    assert isinstance(worker["native_id"], int)
    (stop,) = calls(log, "stop")
    assert stop["flush"] is True and stop["timeout_s"] == pytest.approx(11.0)


def test_one_profiler_per_process(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        from emberscope.profiling import Profiler
        a, b = Profiler(), Profiler()
        print(a.start(), b.start(), a.start())
        a.stop(); a.stop()
        with Profiler() as c:
            print(c.running)
        print(c.running)
        """, stub_log)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False", "True", "False"]
    lines = stderr_lines(result)
    assert lines == ["emberscope: a profiler is already running in this process; start() ignored",
                     "emberscope: this profiler is already running; start() ignored"]
    assert len(calls(log, "start")) == 2 and len(calls(log, "stop")) == 2


def test_atexit_flushes(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        from emberscope.profiling import Profiler
        Profiler().start()
        """, stub_log)
    assert result.returncode == 0, result.stderr
    (stop,) = calls(log, "stop")
    assert stop["flush"] is True


def test_sigterm_flushes_and_dies_from_the_signal(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import os, signal, time
        from emberscope.profiling import Profiler
        Profiler().start()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        print("not reached")
        """, stub_log)
    assert result.returncode == -signal.SIGTERM
    assert result.stdout == ""
    assert len(calls(log, "stop")) == 1 and calls(log, "stop")[0]["flush"] is True


def test_existing_sigterm_handler_is_left_alone(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import os, signal, sys
        def handler(signum, frame):
            print("app handler"); sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
        from emberscope.profiling import Profiler
        Profiler().start()
        assert signal.getsignal(signal.SIGTERM) is handler
        os.kill(os.getpid(), signal.SIGTERM)
        """, stub_log)
    assert result.returncode == 3
    assert result.stdout.strip() == "app handler"
    assert len(calls(log, "stop")) == 1  # from atexit


def test_sigterm_handler_removed_on_stop(tmp_path, stub_log):
    result, _ = run_script(tmp_path, """
        import signal
        from emberscope.profiling import Profiler
        p = Profiler(); p.start()
        installed = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        p.stop()
        print(installed, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        """, stub_log)
    assert result.stdout.split() == ["True", "True"]


def test_fork_hooks(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import os, threading
        from emberscope.profiling import Profiler
        p = Profiler(); p.start()
        pid = os.fork()
        if pid == 0:
            threading.current_thread().name = "child-main"
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
        p.stop()
        """, stub_log)
    assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    parent = [c for c in log if c["call"] == "start"][0]["pid"]
    assert len(calls(log, "fork_prepare", parent)) == 1
    assert len(calls(log, "fork_parent", parent)) == 1
    assert len(calls(log, "fork_child", child)) == 1
    child_names = [c["name"] for c in calls(log, "set_thread_name", child)]
    assert "MainThread" in child_names and "child-main" in child_names


def test_fork_hooks_do_nothing_when_not_running(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import os
        from emberscope.profiling import Profiler
        p = Profiler(); p.start(); p.stop()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        """, stub_log)
    assert result.returncode == 0, result.stderr
    assert not [c for c in log if c["call"].startswith("fork")]


def test_fallback_sampler(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        import os, threading, time
        from emberscope.profiling import Profiler, _fallback
        p = Profiler(); p.start()
        time.sleep(0.3)
        names = [t.name for t in threading.enumerate()]
        assert "emberscope-fallback-sampler" in names, names
        thread = [t for t in threading.enumerate() if t.name == "emberscope-fallback-sampler"][0]
        assert thread.daemon
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            os._exit(0 if _fallback.is_running() else 1)
        _, status = os.waitpid(pid, 0)
        t0 = time.time(); p.stop(); elapsed = time.time() - t0
        print(pid, os.WEXITSTATUS(status), elapsed < 1.0, _fallback.is_running())
        """, stub_log, start={"sampler": "fallback", "reason": "process_vm_readv denied"},
        extra={"STUB_TICK": "5"})  # a long interval: stop must still be immediate
    assert result.returncode == 0, result.stderr
    child, status, fast, running = result.stdout.split()
    assert (status, fast, running) == ("0", "True", "False")
    # (Python 3.12+ adds its own DeprecationWarning about fork() with threads)
    assert [l for l in stderr_lines(result) if l.startswith("emberscope")] == [
        "emberscope: native sampler unavailable (process_vm_readv denied); "
        "using the fallback sampler"]
    parent = calls(log, "start")[0]["pid"]
    assert len(calls(log, "fallback_tick", parent)) >= 1
    assert len(calls(log, "fallback_tick", int(child))) >= 1
    assert "emberscope-fallback-sampler" in [c["name"] for c in calls(log, "set_thread_name")]


def test_native_failures_become_one_warning(tmp_path, stub_log):
    result, log = run_script(tmp_path, """
        from emberscope.profiling import Profiler
        p = Profiler()
        print(p.start(), p.running)
        """, stub_log, extra={"STUB_FAIL": "start"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert stderr_lines(result) == [
        "emberscope: could not start the profiler: stub failure in start"]

    os.remove(stub_log)
    result, log = run_script(tmp_path, """
        from emberscope.profiling import Profiler
        p = Profiler(); p.start()
        print(p.stop())
        """, stub_log, extra={"STUB_FAIL": "stop"})
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == [
        "emberscope: error while stopping the profiler: stub failure in stop"]


MONITORING = available_interpreters(minimum=(3, 12))


@pytest.mark.skipif(not MONITORING, reason="no Python >= 3.12 available")
@pytest.mark.parametrize("version,python", MONITORING, ids=[v for v, _ in MONITORING])
def test_exceptions_via_sys_monitoring(tmp_path, stub_log, version, python):
    result, log = run_script(tmp_path, """
        import sys
        mon = sys.monitoring
        from emberscope.profiling import Profiler
        p = Profiler(); p.start()
        tool = p._tool_id
        print(tool, mon.get_tool(tool))
        def boom():
            raise KeyError("x")
        for _ in range(3):
            try:
                boom()
            except KeyError:
                pass
        p.stop()
        print(mon.get_tool(tool))
        # the profiler id already taken: another free id is used
        mon.use_tool_id(mon.PROFILER_ID, "someone-else")
        q = Profiler(); q.start()
        print(q._tool_id, mon.get_tool(q._tool_id))
        q.stop()
        """, stub_log, start={"sampler": "native", "reason": None, "exceptions": "monitoring"},
        python=python)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 emberscope"
    assert lines[1] == "None"
    other_id, name = lines[2].split()
    assert other_id not in ("0", "1", "2") and name == "emberscope"
    raises = calls(log, "on_raise")
    assert len([r for r in raises if r["code"] == "boom" and r["exc"] == "KeyError"]) == 3


@pytest.mark.skipif(not MONITORING, reason="no Python >= 3.12 available")
def test_no_monitoring_when_native_handles_exceptions(tmp_path, stub_log):
    version, python = MONITORING[0]
    result, log = run_script(tmp_path, """
        import sys
        from emberscope.profiling import Profiler
        p = Profiler(); p.start()
        print(p._tool_id, sys.monitoring.get_tool(sys.monitoring.PROFILER_ID))
        p.stop()
        q = Profiler(exception=False); q.start()
        print(q._tool_id)
        """, stub_log, start={"sampler": "native", "exceptions": "native"}, python=python)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None", "None"]


def test_lifecycle_on_oldest_and_newest_python(tmp_path, stub_log):
    for version, python in [available_interpreters()[0], available_interpreters()[-1]]:
        if os.path.exists(stub_log):
            os.remove(stub_log)
        result, log = run_script(tmp_path, """
            import threading
            from emberscope.profiling import Profiler
            p = Profiler(); p.start()
            t = threading.Thread(target=lambda: None, name="w"); t.start(); t.join()
            t.name = "w2"
            p.stop()
            """, stub_log, python=python)
        assert result.returncode == 0, (version, result.stderr)
        assert result.stderr == ""
        assert "w" in [c["name"] for c in calls(log, "set_thread_name")], version
        assert len(calls(log, "stop")) == 1
