"""JupyterHub configuration of the course's class hub (`make hub`, tests/test_hub.py).

Everything a class needs is laid out by ``scripts/hub/class_hub.py`` under one folder, the
hub's state, named by ``ATTN_HUB_STATE``; ``class.json`` there says who is in the class and
which ports to use. This file only reads it:

- login: JupyterHub's default PAM authenticator, against the unix users the set-up created
  (one per student and one for the instructor, each with their own password);
- servers: JupyterHub's default ``LocalProcessSpawner``: each user's Jupyter server runs as
  that unix user, in their home (mode 0700), from the shared course environment (the
  environment ``make env`` made, read-only for the users);
- nbgrader: the exchange and the course id come from ``STATE/etc/jupyter/nbgrader_config.py``
  (``JUPYTER_CONFIG_PATH``), the same for everyone, as ``/etc/jupyter`` would on a real hub.
"""

import json
import os
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when jupyterhub loads this file)

state = Path(os.environ["ATTN_HUB_STATE"])
info = json.loads((state / "class.json").read_text())
venv_bin = Path(info["venv_bin"])

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = info["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = info["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{info['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [info["proxy"]]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server

c.PAMAuthenticator.open_sessions = False  # no login session (systemd) per Jupyter server
c.Authenticator.allowed_users = {info["instructor"], *info["students"]}
c.Authenticator.admin_users = {info["instructor"]}

c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/tree"  # Notebook 7's file browser, with nbgrader's Assignments
c.Spawner.environment = {
    "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
    "JUPYTER_CONFIG_PATH": str(state / "etc" / "jupyter"),
}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180

# A service with a token, for the scripts that drive the class without a browser
# (benchmarks/hub_class.py, the test's checks): it may start servers and issue user tokens.
if info.get("service_token"):
    c.JupyterHub.services = [{"name": "class-driver", "api_token": info["service_token"]}]
    c.JupyterHub.load_roles = [
        {
            "name": "class-driver",
            "services": ["class-driver"],
            "scopes": ["admin:users", "admin:servers", "tokens", "read:users"],
        }
    ]
