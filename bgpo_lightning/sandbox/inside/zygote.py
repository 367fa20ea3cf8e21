"""A fork server: one long-lived process that forks a ready launcher per run.

Starting a Python interpreter and importing the launcher costs tens of milliseconds per run,
most of a run's overhead. The host instead starts this server once (as ``python -I -S``,
like a launcher) and asks it, over a Unix socket pair, for a launcher per run: the request
carries the run's four pipe ends (standard input, output, error, report) as ``SCM_RIGHTS``
descriptors, the reply the forked launcher's pid and a pidfd for it (so the host can kill
exactly that process, with no pid-reuse race).

The server never reads any run's data: programs and tests go to each launcher through its
own standard input, after the fork. It reaps launchers automatically (``SIGCHLD`` ignored)
and exits when the host closes its end of the socket.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from typing import NoReturn

from . import boot, seccomp

REPORT_FD = 3  # where a forked launcher finds its report pipe
_FDS = 4


def serve(sock_fd: int) -> NoReturn:
    """Answers launch requests on ``sock_fd`` until end of stream."""
    seccomp.load_library()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 16, _FDS)
        except OSError:
            os._exit(1)
        if not message:
            os._exit(0)
        if len(fds) != _FDS:
            for fd in fds:
                os.close(fd)
            sock.sendall(struct.pack("i", -1))
            continue
        pid = os.fork()
        if pid == 0:
            _become_launcher(sock, fds)
        for fd in fds:
            os.close(fd)
        try:
            pidfd = [os.pidfd_open(pid)]
        except OSError:  # already gone
            pidfd = []
        socket.send_fds(sock, [struct.pack("i", pid)], pidfd)
        for fd in pidfd:
            os.close(fd)


def _become_launcher(sock: socket.socket, fds: list[int]) -> NoReturn:
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(_FDS, 1 << 20)
    except BaseException:
        os._exit(1)
    boot.main()
