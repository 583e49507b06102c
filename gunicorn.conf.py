"""gunicorn settings for production (`make serve`, `gunicorn -c gunicorn.conf.py wsgi:app`).

A generation holds its request open for as long as the provider takes (up to
GENERATION_TIMEOUT), so the workers are threaded (`gthread`: one slow request blocks one thread,
not a whole worker) and every timeout in the chain is longer than a generation:

    GENERATION_TIMEOUT (app, 120)  <  timeout / graceful_timeout (here, +30)  <  nginx (180)

Settings come from the environment, and from `.env`, which gunicorn does not read by itself:
GUNICORN_BIND or BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (workers, default 2),
GUNICORN_THREADS (threads per worker, default 8), GENERATION_TIMEOUT (seconds, default 120).
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent
load_dotenv(ROOT / ".env")


def _env(name: str, default: str) -> str:
    """The variable, or the default when it is unset or blank (as config.py reads it)."""
    return os.environ.get(name, "").strip() or default


GENERATION_TIMEOUT = float(_env("GENERATION_TIMEOUT", "120"))

wsgi_app = "wsgi:app"
chdir = str(ROOT)  # `wsgi`, `config` and `migrations/` resolve from any working directory
bind = [_env("GUNICORN_BIND", _env("BIND", "127.0.0.1:8000"))]

worker_class = "gthread"
workers = int(_env("WEB_CONCURRENCY", "2"))
threads = int(_env("GUNICORN_THREADS", "8"))
# Each worker imports the app itself: its own database engine and connection pool, nothing
# opened before fork() is shared between processes.
preload_app = False

# A worker that does not check in for this long is killed and replaced; a stopping worker gets
# this long to finish the generations it is running. Both outlast the longest generation.
timeout = int(GENERATION_TIMEOUT) + 30
graceful_timeout = int(GENERATION_TIMEOUT) + 30
keepalive = 5  # nginx keeps upstream connections open (upstream keepalive)

# Recycle workers now and then (bounds slow leaks); the jitter keeps them from restarting at once.
max_requests = 1000
max_requests_jitter = 100

# Logs go to stdout/stderr: systemd's journal (or docker) keeps them; no log files to rotate.
accesslog = "-"
errorlog = "-"
loglevel = _env("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" forwarded-for="%({x-forwarded-for}i)s"'
capture_output = True  # the app's own warnings and tracebacks land in the same stream

# X-Forwarded-Proto is believed from the local nginx only (the app's ProxyFix does the rest).
forwarded_allow_ips = "127.0.0.1,::1"

proc_name = "imagegen"
# No runtime control socket: several instances on one machine would share its default path.
control_socket_disable = True
