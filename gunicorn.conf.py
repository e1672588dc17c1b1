"""gunicorn settings for ``gunicorn -c gunicorn.conf.py wsgi:app``.

They come from the monitor's own YAML file (``MONITOR_CONFIG``, else built-in
defaults), exactly as ``recodex-monitor -c FILE`` computes them.  A bad file
stops start-up here, in the master, with one line and exit code 2.
"""

import sys

from monitor.config import ConfigError, config_path_from_env, load_config
from monitor.gunicorn_settings import gunicorn_settings
from monitor.memory import use_system_allocator

try:
    _config, _warnings = load_config(config_path_from_env())
except ConfigError as _error:
    print(f"recodex-monitor: {_error}", file=sys.stderr)
    sys.exit(2)

use_system_allocator()
globals().update(gunicorn_settings(_config))
