"""A tiny WSGI app for the pre-fork server test (gunicorn -w 3 wsgi_app:app).

Each request burns a little CPU in handle_request() and answers with the
worker's pid.
"""

import os


def handle_request(n):
    x = 0
    for i in range(n):
        x += i
    return x


def app(environ, start_response):
    handle_request(200000)
    body = str(os.getpid()).encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
