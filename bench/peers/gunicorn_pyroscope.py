"""gunicorn config file for the pyroscope-io condition of the pre-fork (gunicorn) workload.

pyroscope-io is not fork-safe after configure() (its sampler does not survive fork), so for a
pre-fork server it is started in each worker by a post_fork hook, and its final upload is made
by worker_exit; the master is not profiled. Same settings as pyroscope_run.py.

    python -m gunicorn --config bench/peers/gunicorn_pyroscope.py wsgi_app:app ...
"""
import os


def post_fork(server, worker):
    import pyroscope
    pyroscope.configure(
        application_name="emberscope.bench",
        server_address=os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:4040"),
        sample_rate=100,
    )


def worker_exit(server, worker):
    import pyroscope
    pyroscope.shutdown()
