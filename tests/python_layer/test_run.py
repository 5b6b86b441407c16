"""The emberscope-run launcher (python -m emberscope.commands.run)."""

import json
import os
import signal
import subprocess
import sys

from pyl_helpers import (BOOTSTRAP_DIR, HERE, PYTHON_DIR, clean_env, launcher, run,
                      stderr_lines)

from emberscope import _config

PRINT_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"


def test_help_lists_every_option_and_environment_variable():
    result = launcher("--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for option in ("--info", "-p, --profiling", "-d, --debug", "--version", "COMMAND", "ARGS"):
        assert option in out
    for setting in _config.SETTINGS:
        for name in setting.env_names:
            assert name in out, name
        default = setting.default_doc or _config.format_value(setting.default)
        assert "(default: %s)" % default in out, setting.env


def test_version():
    result = launcher("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("emberscope ")


def test_info_prints_every_setting_with_its_source():
    result = launcher("--info", extra_env={"DD_SERVICE": "svc", "DD_PROFILING_UPLOAD_INTERVAL": "5"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for setting in _config.SETTINGS:
        assert setting.env in out
    lines = out.splitlines()
    assert any(l.split() == ["DD_SERVICE", "=", "svc", "[env", "DD_SERVICE]"] for l in lines)
    assert any(l.split()[:3] == ["DD_PROFILING_UPLOAD_INTERVAL", "=", "5.0"] for l in lines)
    assert any(l.split() == ["DD_PROFILING_MAX_FRAMES", "=", "64", "[default]"] for l in lines)
    assert "profiling: disabled" in out
    assert "sampler: " in out
    assert "native extension: " in out


def test_info_with_profiling_flag_and_fallback_sampler():
    result = launcher("-p", "--info", extra_env={"DD_PROFILING_STACK_V2_ENABLED": "false"})
    assert result.returncode == 0, result.stderr
    assert "profiling: enabled [env DD_PROFILING_ENABLED]" in result.stdout
    sampler = [l for l in result.stdout.splitlines() if l.startswith("sampler:")]
    assert len(sampler) == 1 and "fallback" in sampler[0]


def test_info_reports_bad_values_once():
    result = launcher("--info", extra_env={"DD_PROFILING_MAX_FRAMES": "many"})
    assert result.returncode == 0
    assert stderr_lines(result) == [
        "emberscope: DD_PROFILING_MAX_FRAMES='many' is not an integer; using the default 64"]


def test_arguments_pass_through_unchanged():
    args = ["-x", "--info", "-p", "--", "-d", "plain", ""]
    result = launcher(sys.executable, "-c", PRINT_ARGV, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == args
    assert result.stderr == ""


def test_python_dash_m_package_receives_its_options(tmp_path):
    pkg = tmp_path / "apppkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(PRINT_ARGV + "\n")
    env = clean_env({"PYTHONPATH": os.pathsep.join([PYTHON_DIR, str(tmp_path)])})
    result = run([sys.executable, "-m", "emberscope.commands.run", "python3", "-m", "apppkg",
                  "-x", "--help", "-p"], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["-x", "--help", "-p"]


def test_double_dash_ends_launcher_options():
    result = launcher("--", sys.executable, "-c", PRINT_ARGV, "a")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["a"]


def test_profiling_and_debug_flags_set_the_environment():
    code = "import os; print(os.environ.get('DD_PROFILING_ENABLED'), os.environ.get('EMBERSCOPE_DEBUG'))"
    # -I: no sitecustomize side effects, we only look at the environment
    result = launcher("-p", "-d", sys.executable, "-I", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["true", "true"]


def test_bootstrap_dir_is_prepended_to_pythonpath_once(tmp_path):
    code = "import os; print(os.environ['PYTHONPATH'])"
    result = launcher(sys.executable, "-I", "-c", code)
    assert result.stdout.strip().split(os.pathsep) == [BOOTSTRAP_DIR, PYTHON_DIR]
    # nested launchers do not stack the bootstrap dir
    result = launcher(sys.executable, "-m", "emberscope.commands.run", sys.executable, "-I",
                      "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(os.pathsep) == [BOOTSTRAP_DIR, PYTHON_DIR]


def test_exit_status_is_the_applications():
    result = launcher(sys.executable, "-c", "import sys; sys.exit(37)")
    assert result.returncode == 37


def test_exec_keeps_the_pid():
    proc = subprocess.Popen(
        [sys.executable, "-m", "emberscope.commands.run", sys.executable, "-c",
         "import os; print(os.getpid())"],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, cwd=HERE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert int(out.strip()) == proc.pid


def test_exec_keeps_the_pid_seen_from_a_wrapper_script(tmp_path):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'emberscope.commands.run', sys.executable,\n"
        "                      '-c', 'import os; print(os.getpid())'], stdout=subprocess.PIPE)\n"
        "out, _ = p.communicate()\n"
        "print('same' if int(out) == p.pid else 'different %s %s' % (int(out), p.pid))\n")
    result = run([sys.executable, str(wrapper)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "same"


def test_signals_reach_the_application_directly():
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM); import time; time.sleep(5)"
    result = launcher(sys.executable, "-c", code)
    assert result.returncode == -signal.SIGTERM


def test_missing_command_exits_127():
    result = launcher("emberscope-no-such-command-xyz", "arg")
    assert result.returncode == 127
    assert stderr_lines(result) == [
        "emberscope-run: emberscope-no-such-command-xyz: command not found"]
    result = launcher("./no/such/file")
    assert result.returncode == 127
    assert "no such file or directory" in result.stderr


def test_not_executable_exits_126(tmp_path):
    script = tmp_path / "notexec"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(str(script), 0o644)
    result = launcher(str(script))
    assert result.returncode == 126
    assert "permission denied" in result.stderr
    # same file found through PATH
    env = clean_env({"PATH": str(tmp_path) + os.pathsep + os.environ.get("PATH", "")})
    result = run([sys.executable, "-m", "emberscope.commands.run", "notexec"], env=env)
    assert result.returncode == 126
    # a directory
    result = launcher(str(tmp_path))
    assert result.returncode == 126


def test_exec_failure_of_an_executable_file_exits_126(tmp_path):
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\x7fELF garbage")
    os.chmod(str(bogus), 0o755)
    result = launcher(str(bogus))
    assert result.returncode == 126
    assert result.stderr.startswith("emberscope-run: cannot execute")


def test_missing_command_and_bad_option_are_usage_errors():
    result = launcher()
    assert result.returncode == 2
    assert "missing COMMAND" in result.stderr
    result = launcher("--no-such-option", "python")
    assert result.returncode == 2


def test_python_dash_m_emberscope_forwards():
    result = run([sys.executable, "-m", "emberscope", sys.executable, "-c", PRINT_ARGV, "z"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["z"]
