"""Container init: the few steps between fork and the container's own program.

Run by the process runtime as `python -I -S init.py '<json spec>'` — a file
path, not a module, and only the standard library, so it starts in a few
milliseconds without the venv's site-packages. Python 3.11 has no
`os.unshare`/`os.setns`, so those come from libc through ctypes. Steps, in an
order that matters:

1. become the controlling terminal's session leader when given a pty;
2. join the container's cgroups (before any user namespace, while the host
   uid still owns the cgroup files) so limits apply from the first byte;
3. `run`: join the pod's network namespace when the sandbox has one (setns on
   the named netns file, before anything is unshared, so the container starts
   on the pod's network), then unshare the UTS + mount (+ user, when not root)
   namespaces, set the hostname and build the container's view of the
   filesystem (see `build_root`); `exec`: setns into the namespaces of the
   container's pid (network included);
4. chdir to the working directory and execve the command with exactly the
   given environment.

Failures before execve are written to fd 3 (the status pipe, close-on-exec:
EOF there means execve succeeded), so the runtime can report
"ContainerCannotRun" with the real reason instead of a bare exit code.

Why build a new root for mounts: a volume's mountPath (say /etc/config)
usually does not exist on the host, and creating it there would change the
host. Inside the private mount namespace we mount a tmpfs as the new root and
recursively bind every top-level host entry into it; when a mount point's
parent is a host directory, that directory is "shadowed": its content is
bind-mounted aside, a tmpfs goes on top, and each original entry is bound
back, so the missing directory can be created in the tmpfs. Nothing on the
host changes, every host path stays visible, and pivot_root makes the result
the namespace's root so `exec` (setns) lands in the same view.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import sys
import termios

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
NS_FLAGS = {"user": CLONE_NEWUSER, "net": CLONE_NEWNET, "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def umount(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(
    os.uname().machine, 155
)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()), "pivot_root")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_user_namespace(flags: int) -> None:
    """Unshare with a user namespace mapping our own uid/gid to themselves (no root inside)."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(flags | CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _placeholder(src: str, dst: str) -> bool:
    """Create at `dst` what `src` needs to be bind-mounted on; False for symlinks (copied instead)."""
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return False
    if os.path.isdir(src):
        os.mkdir(dst, os.stat(src).st_mode & 0o7777)
    else:
        os.close(os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644))
    return True


class RootBuilder:
    """Builds the container's root in `staging` (a host dir we own) using `stash` for shadowed dirs."""

    def __init__(self, staging: str, stash: str) -> None:
        self.root = staging
        self.stash = stash
        self.owned: set[str] = {staging}  # dirs on our own tmpfs: safe to create entries in
        self.shadows = 0

    def mirror_host(self) -> None:
        mount("tmpfs", self.root, "tmpfs", MS_NOSUID, "mode=755")
        mount("tmpfs", self.stash, "tmpfs", 0, "mode=700")
        for entry in sorted(os.listdir("/")):
            src, dst = "/" + entry, os.path.join(self.root, entry)
            if _placeholder(src, dst):
                mount(src, dst, None, MS_BIND | MS_REC)

    def shadow(self, directory: str) -> None:
        """Replace a host-backed `directory` by a tmpfs holding binds of its original entries."""
        self.shadows += 1
        aside = os.path.join(self.stash, str(self.shadows))
        os.mkdir(aside)
        mode = os.stat(directory).st_mode & 0o7777
        mount(directory, aside, None, MS_BIND | MS_REC)
        mount("tmpfs", directory, "tmpfs", 0, f"mode={mode:o}")
        for entry in os.listdir(aside):
            src, dst = os.path.join(aside, entry), os.path.join(directory, entry)
            if _placeholder(src, dst):
                mount(src, dst, None, MS_BIND | MS_REC)
        self.owned.add(directory)

    def resolve(self, container_path: str, *, is_dir: bool) -> str:
        """The staging path for `container_path`, creating it (never on the host) if missing."""
        cur = self.root
        parts = [p for p in os.path.normpath(container_path).split("/") if p]
        for _ in range(40 + len(parts)):  # bounded: symlinks may loop
            if not parts:
                return cur
            name, parts = parts[0], parts[1:]
            nxt = os.path.join(cur, name)
            if os.path.islink(nxt):
                target = os.readlink(nxt)
                if target.startswith("/"):
                    cur = self.root
                parts = [p for p in os.path.normpath(target).split("/") if p] + parts
                continue
            if name == "..":
                cur = os.path.dirname(cur) if cur != self.root else cur
                continue
            if not os.path.lexists(nxt):
                if cur not in self.owned:
                    self.shadow(cur)
                if parts or is_dir:
                    os.mkdir(nxt, 0o755)
                else:
                    os.close(os.open(nxt, os.O_CREAT | os.O_WRONLY, 0o644))
                self.owned.add(nxt)
            cur = nxt
        raise OSError(f"too many symlinks resolving {container_path}")

    def bind(self, host_path: str, container_path: str, read_only: bool) -> None:
        target = self.resolve(container_path, is_dir=os.path.isdir(host_path))
        mount(host_path, target, None, MS_BIND | MS_REC)
        if read_only:
            # A remount must keep the flags the kernel locked on the source (in a user ns).
            st = os.statvfs(target).f_flag
            keep = 0
            for st_bit, ms_bit in ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME),
                                   (2048, MS_NODIRATIME), (4096, MS_RELATIME)):
                if st & st_bit:
                    keep |= ms_bit
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)

    def enter(self) -> None:
        """Make the built tree the namespace's root (pivot_root; chroot where pivot is impossible)."""
        umount(self.stash, MNT_DETACH)
        os.chdir(self.root)
        try:
            pivot_root(".", ".")
            umount(".", MNT_DETACH)
        except OSError:
            os.chroot(".")
        os.chdir("/")


def join_netns(path: str) -> None:
    """Enter the pod sandbox's network namespace (a bind-mounted netns file, e.g. /run/netns/kl-pod-<uid>)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def run_namespaces(spec: dict) -> None:
    flags = CLONE_NEWNS | CLONE_NEWUTS
    if spec["userns"]:
        enter_user_namespace(flags)
    else:
        unshare(flags)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        name = spec["hostname"].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    if spec.get("mounts"):
        builder = RootBuilder(spec["staging"], spec["stash"])
        builder.mirror_host()
        for host_path, container_path, read_only in spec["mounts"]:
            builder.bind(host_path, container_path, read_only)
        builder.enter()


def join_namespaces(spec: dict) -> None:
    pid = spec["target_pid"]
    fds = {ns: os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY) for ns in spec["join"]}
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    for ns in ("user", "net", "mnt", "uts"):  # user first: it grants the rights for the others
        if ns in fds:
            setns(fds[ns], NS_FLAGS[ns])
            os.close(fds[ns])
    os.fchdir(root)
    os.chroot(".")
    os.close(root)


def probe() -> dict:
    """What this kernel lets us do: run in a child, report as JSON."""
    result = {"namespaces": False, "mounts": False, "error": ""}
    try:
        if os.geteuid() != 0:
            enter_user_namespace(CLONE_NEWNS | CLONE_NEWUTS)
        else:
            unshare(CLONE_NEWNS | CLONE_NEWUTS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        _check(_libc.sethostname(b"kubeling-probe", 14), "sethostname")
        result["namespaces"] = True
        mount("tmpfs", "/tmp", "tmpfs", 0, "mode=755")
        result["mounts"] = True
    except OSError as exc:
        result["error"] = str(exc)
    return result


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    if spec["mode"] == "probe":
        print(json.dumps(probe()))
        return
    status = spec.get("status_fd", -1)
    if status >= 0:
        fcntl.fcntl(status, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    try:
        if spec.get("tty"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        for procs in spec.get("cgroup_procs", []):
            _write(procs, str(os.getpid()))
        if spec["mode"] == "run" and spec.get("netns"):
            join_netns(spec["netns"])  # first: the mount namespace built next may hide /run/netns
        if spec["mode"] == "run" and spec.get("namespaces"):
            run_namespaces(spec)
        elif spec["mode"] == "exec" and spec.get("join"):
            join_namespaces(spec)
        os.chdir(spec.get("cwd") or "/")
        env = dict(spec["env"])
        argv0 = spec["argv"][0]
        os.execvpe(argv0, spec["argv"], env)
    except OSError as exc:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, FileNotFoundError) and exc.filename is None:
            message = f'exec: "{spec["argv"][0]}": executable file not found in $PATH'
        if status >= 0:
            os.write(status, message.encode())
        else:
            os.write(2, (message + "\n").encode())
        os._exit(127)


if __name__ == "__main__":
    main(sys.argv)
