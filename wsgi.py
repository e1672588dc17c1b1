"""WSGI entry point for ``gunicorn -c gunicorn.conf.py wsgi:app``.

The configuration file is named by ``MONITOR_CONFIG``; without it the monitor
runs on its built-in defaults.  gunicorn.conf.py has already validated the file
in the master, so a bad file never gets this far.
"""

from monitor.app import create_app
from monitor.config import config_path_from_env, load_config

app = create_app(*load_config(config_path_from_env()))
