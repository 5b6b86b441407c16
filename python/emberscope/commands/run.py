"""``emberscope-run``: run a command with the emberscope bootstrap.

    emberscope-run [--info] [-p] [-d] [--version] COMMAND [ARGS...]

The launcher puts ``emberscope/bootstrap`` first on ``PYTHONPATH`` and
replaces itself (``exec``) with COMMAND, so the pid, exit status and signal
handling are the application's own. Every Python interpreter started that way
imports the bootstrap ``sitecustomize``, which starts the profiler when
``DD_PROFILING_ENABLED`` is true.
"""

import argparse
import errno
import os
import shutil
import sys

import emberscope
from emberscope import _config
from emberscope import _log

PROG = "emberscope-run"
USAGE = "%s [-h] [--info] [-p] [-d] [--version] COMMAND [ARGS...]" % PROG
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


def bootstrap_dir():
    return os.path.join(os.path.dirname(os.path.abspath(emberscope.__file__)), "bootstrap")


def _build_parser():
    epilog = [
        "COMMAND is looked up in PATH and exec'd: same pid, same exit status, same",
        "signals. Options after COMMAND belong to it (emberscope-run python -m pkg -x",
        "passes -x to the application); use -- to end emberscope-run's options.",
        "",
        "environment variables (read by the profiler in the launched processes):",
    ]
    epilog.extend(_config.env_help())
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=USAGE,
        description="Run COMMAND with the emberscope continuous profiler bootstrap.",
        epilog="\n".join(epilog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--info", action="store_true",
                        help="print the effective configuration (every setting, its value "
                             "and where it comes from, and which sampler would run) and exit")
    parser.add_argument("-p", "--profiling", action="store_true",
                        help="enable profiling (sets DD_PROFILING_ENABLED=true)")
    parser.add_argument("-d", "--debug", action="store_true",
                        help="log emberscope debug messages to stderr (sets EMBERSCOPE_DEBUG=true)")
    parser.add_argument("--version", action="store_true",
                        help="print the emberscope version and exit")
    parser.add_argument("command", nargs="?", metavar="COMMAND",
                        help="program to run, looked up in PATH (e.g. python, gunicorn)")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="arguments passed unchanged to COMMAND")
    return parser


def split_argv(argv):
    """Split into (launcher options, [COMMAND, ARGS...]) at the first
    non-option argument or after ``--``."""
    for index, arg in enumerate(argv):
        if arg == "--":
            return list(argv[:index]), list(argv[index + 1:])
        if arg == "-" or not arg.startswith("-"):
            return list(argv[:index]), list(argv[index:])
    return list(argv), []


def _err(message):
    try:
        sys.stderr.write("%s: %s\n" % (PROG, message))
        sys.stderr.flush()
    except Exception:
        pass


def info_lines(environ=None):
    config = _config.from_env(environ)
    lines = ["emberscope %s" % emberscope.__version__,
             "python: %s (%s)" % (sys.version.split()[0], sys.executable)]
    reason = None
    try:
        from emberscope import _nativelib

        native = _nativelib.get(warn=False)
        if native is not None:
            lines.append("native extension: available (%s)" % native.version())
        else:
            reason = _nativelib.unavailable_reason()
            lines.append("native extension: unavailable (%s)" % reason)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        lines.append("native extension: unavailable (%s)" % reason)
    lines.append("bootstrap: %s" % bootstrap_dir())
    lines.extend(_config.describe(config, native_unavailable=reason))
    if config.exception:
        lines.append("exceptions: on (sys.monitoring on Python 3.12+; below 3.12 the "
                     "native layer decides)")
    else:
        lines.append("exceptions: off (DD_PROFILING_EXCEPTION_ENABLED is false)")
    return lines


def _with_bootstrap_on_pythonpath(environ):
    env = dict(environ)
    boot = bootstrap_dir()
    entries = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e]
    for entry in entries:
        try:
            if os.path.realpath(entry) == os.path.realpath(boot):
                return env
        except Exception:
            pass
    env["PYTHONPATH"] = os.pathsep.join([boot] + entries)
    return env


def _not_executable_in_path(command, path_value):
    """A file named ``command`` exists in PATH but is not executable?"""
    for directory in (path_value or "").split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, command)
        if os.path.isfile(candidate) and not os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_command(command, environ):
    """Returns (path, None) or (None, (exit_code, message))."""
    path_value = environ.get("PATH", os.defpath)
    found = shutil.which(command, path=path_value)
    if found:
        return found, None
    if os.sep in command or (os.altsep and os.altsep in command):
        if os.path.isdir(command):
            return None, (EXIT_NOT_EXECUTABLE, "%s: is a directory" % command)
        if os.path.exists(command):
            return None, (EXIT_NOT_EXECUTABLE, "%s: permission denied (not executable)" % command)
        return None, (EXIT_NOT_FOUND, "%s: no such file or directory" % command)
    candidate = _not_executable_in_path(command, path_value)
    if candidate:
        return None, (EXIT_NOT_EXECUTABLE, "%s: permission denied (%s is not executable)"
                      % (command, candidate))
    return None, (EXIT_NOT_FOUND, "%s: command not found" % command)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    head, tail = split_argv(argv)
    parser = _build_parser()
    opts = parser.parse_args(head)  # exits 0 on --help, 2 on a bad option

    if opts.profiling:
        os.environ["DD_PROFILING_ENABLED"] = "true"
    if opts.debug:
        os.environ["EMBERSCOPE_DEBUG"] = "true"
        _log.enable_debug()
    if opts.version:
        print("emberscope %s" % emberscope.__version__)
        return 0
    if opts.info:
        for line in info_lines():
            print(line)
        return 0
    if not tail:
        parser.print_usage(sys.stderr)
        _err("error: missing COMMAND (see --help)")
        return EXIT_USAGE

    command, args = tail[0], tail[1:]
    env = _with_bootstrap_on_pythonpath(os.environ)
    path, problem = resolve_command(command, env)
    if problem is not None:
        code, message = problem
        _err(message)
        return code
    _log.debug("exec %s %r (PYTHONPATH=%s)", path, args, env.get("PYTHONPATH"))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    try:
        os.execvpe(path, [command] + args, env)
    except OSError as exc:
        code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        _err("cannot execute %s: %s" % (command, exc.strerror or exc))
        return code
    return EXIT_NOT_EXECUTABLE  # not reached


if __name__ == "__main__":
    sys.exit(main())
