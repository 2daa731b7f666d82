"""Runs Debian's openstack CLI, unmodified, once per request, in a forked child of one
interpreter that has already imported it (e2e/openstack-cli.ts starts it).

`/usr/bin/openstack ARGS` spends about 1.5 s of its 1.8 s importing openstackclient and its
plugins before it does anything; the end-to-end suite runs hundreds of commands. Each
command here is still a process of its own, with its own argv, environment, working
directory, stdin (/dev/null), stdout and stderr (files) and exit status: the entry point
`/usr/bin/openstack` calls (`openstackclient.shell.main`), in a fork made after the imports.

Requests, one JSON object per line on stdin:
  {"id": N, "argv": [...], "env": {...}, "cwd": "...", "stdout": PATH, "stderr": PATH}
Replies, one per line on stdout: {"id": N, "pid": P} once forked, then
{"id": N, "status": S} (os.waitstatus_to_exitcode: negative for a signal).
"""
import json
import os
import sys
import threading
import traceback

# cliff names the program after sys.argv[0] when it is imported (App.NAME: --version, help, logs).
sys.argv[0] = "/usr/bin/openstack"
from openstackclient import shell  # noqa: E402

out_lock = threading.Lock()


def reply(message):
    with out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def child(req):
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    sys.argv = ["/usr/bin/openstack"] + req["argv"]
    code = 1
    try:
        code = shell.main(req["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


def reap(ident, pid):
    _, status = os.waitpid(pid, 0)
    reply({"id": ident, "status": os.waitstatus_to_exitcode(status)})


def main():
    for line in sys.stdin:
        req = json.loads(line)
        # Forked while no reaper is writing a reply: a lock held at fork would stay held in the child.
        with out_lock:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        if pid == 0:
            child(req)
        reply({"id": req["id"], "pid": pid})
        threading.Thread(target=reap, args=(req["id"], pid), daemon=True).start()


if __name__ == "__main__":
    main()
