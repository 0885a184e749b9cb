"""nginx in a private prefix, for the tests and the benchmarks.

One place for what every nginx the suite starts needs: its own pid file,
error log and temporary directories under a prefix of its own (so it runs
beside any other nginx, as any user), no access log, one server on
127.0.0.1:PORT serving ROOT.  What differs between uses (process model,
keep-alive) is given by the caller.  Used by tests/e2e (test_programs,
test_compat, test_report_real) and tests/bench/servers.py.
"""

import os

_CONF = """daemon off;
master_process {master};
worker_processes {workers};
{user}pid {prefix}/nginx.pid;
error_log {error_log} {error_level};
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
{http}    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def write(prefix, port, root, workers=1, master=False, connections=64,
          error_log="stderr", error_level="notice", http=(), user=None):
    """Write PREFIX/nginx.conf and make PREFIX/tmp; return the command line
    that runs it in the foreground.  workers > 1 or master: a master
    process with that many workers (as root, the workers stay root so
    they can read a private prefix, unless user names the user they run
    as, Debian's way: "www-data"; ROOT must then be readable by it).
    http: extra lines for the http block ("keepalive_timeout 0;")."""
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    master = master or workers > 1
    text = _CONF.format(
        master="on" if master else "off", workers=workers,
        user=("user %s;\n" % (user or "root")) if master and os.geteuid() == 0 else "",
        prefix=prefix, error_log=error_log, error_level=error_level,
        connections=connections, port=port, root=root,
        http="".join("    %s\n" % line for line in http))
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    return ["nginx", "-p", prefix + "/", "-e", error_log, "-c", conf]
