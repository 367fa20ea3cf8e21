"""The sandbox's file system: a fresh tmpfs root holding only what Python needs, read-only.

Built by the init process inside its new mount namespace, before anything untrusted runs:

* ``/`` is made a private mount tree first, so nothing done here reaches the host's mounts;
* the new root is a small tmpfs mounted on the run's host temporary directory, holding empty
  directories and files as mount points; once they are made it is remounted read-only;
* ``/usr``, the interpreter's prefix(es) when outside ``/usr``, real ``/bin``-like top-level
  directories and ``/etc/ld.so.cache`` (so ``dlopen`` finds libraries) are bind-mounted
  read-only, ``nosuid``, ``nodev``; top-level symbolic links (``/lib -> usr/lib``) are copied;
* ``/dev`` holds only ``null``, ``zero``, ``full``, ``random`` and ``urandom``;
* ``/proc`` is a new procfs of the sandbox's pid namespace, ``hidepid=invisible``;
* ``/tmp`` is the run's own tmpfs of ``disk_bytes``, mode 0700, owned by the worker: the only
  writable place, gone with the mount namespace;
* finally the process changes root (``chroot``) to it. The host's ``/work``, ``/root``,
  ``/home``, ``/tmp`` and everything else not listed above are simply not there. A process in
  a chroot cannot create a user namespace (the kernel forbids it), which closes the classic
  way out of a chroot for unprivileged processes.
"""

from __future__ import annotations

import os
import sys

from . import linux

_DEVICES = ("null", "zero", "full", "random", "urandom")
_TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_FILES = ("/etc/ld.so.cache",)
# statvfs f_flag bits that a bind remount must keep (locked in user namespaces) -> MS_* bits.
_KEPT_FLAGS = {
    os.ST_NOEXEC: linux.MS_NOEXEC,
    os.ST_NOATIME: linux.MS_NOATIME,
    os.ST_NODIRATIME: linux.MS_NODIRATIME,
    os.ST_RELATIME: linux.MS_RELATIME,
}


def system_paths() -> tuple[list[str], list[str], dict[str, str]]:
    """Directories and files to bind read-only, and top-level links to copy.

    Returns:
        ``(directories, files, links)``: host paths, and link path -> link target.
    """
    dirs = ["/usr"] if os.path.isdir("/usr") else []
    links: dict[str, str] = {}
    for path in _TOP_LEVEL:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isdir(path):
            dirs.append(path)
    for prefix in {sys.base_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(prefix)
        if os.path.isdir(real) and not any(_under(real, d) for d in dirs):
            dirs = [d for d in dirs if not _under(d, real)] + [real]
    files = [f for f in _FILES if os.path.isfile(f)]
    return sorted(dirs), files, links


def build_root(root: str, disk_bytes: int, owner: tuple[int, int] | None) -> list[str]:
    """Builds the sandbox root at ``root`` and changes into it (``chroot``).

    Args:
        root: An empty host directory to mount the new root on.
        disk_bytes: Size of the writable ``/tmp``.
        owner: ``(uid, gid)`` owning ``/tmp``; ``None`` keeps the caller's.

    Returns:
        Notes on parts that could not be set up (e.g. procfs in some containers).

    Raises:
        OSError: If a required mount fails.
    """
    notes: list[str] = []
    dirs, files, links = system_paths()
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=755")
    for path in dirs:
        _bind(path, _inside(root, path), read_only=True)
    for path in files:
        _bind(path, _inside(root, path), read_only=True, is_file=True)
    for path, target in links.items():
        os.symlink(target, _inside(root, path))
    os.makedirs(_inside(root, "/dev"), mode=0o755)
    for name in _DEVICES:
        device = f"/dev/{name}"
        if os.path.exists(device):
            _bind(device, _inside(root, device), read_only=False, is_file=True)
    proc = _inside(root, "/proc")
    os.mkdir(proc, 0o555)
    try:
        flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
        linux.mount("proc", proc, "proc", flags, "hidepid=2")
    except OSError as err:
        notes.append(f"no /proc ({err.strerror})")
    tmp = _inside(root, "/tmp")
    os.mkdir(tmp, 0o700)
    data = f"size={disk_bytes},nr_inodes=4096,mode=700"
    if owner is not None:
        data += f",uid={owner[0]},gid={owner[1]}"
    linux.mount("tmpfs", tmp, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, data)
    linux.mount(
        None, root, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
    )
    os.chdir(root)
    os.chroot(".")
    os.chdir("/")
    return notes


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _bind(source: str, target: str, read_only: bool, is_file: bool = False) -> None:
    if is_file:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with open(target, "w"):
            pass
    else:
        os.makedirs(target, mode=0o755, exist_ok=True)
    linux.mount(source, target, None, linux.MS_BIND)
    if read_only:
        flags = (
            linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
        )
        kept = os.statvfs(source).f_flag
        for st_flag, ms_flag in _KEPT_FLAGS.items():
            if kept & st_flag:
                flags |= ms_flag
        linux.mount(None, target, None, flags)
