"""A real network filesystem over loopback: a private ``sshd`` and ``sshfs`` mounts of it.

What the daemon meets on a share: a FUSE client (``fuse.sshfs``) with the attribute and
directory caches every network client has (sshfs: 20 s for both by default, on top of the
kernel's 1 s), and the placeholders FUSE leaves for a file unlinked while open
(``.fuse_hidden*``; NFS leaves ``.nfs*`` the same way). Files written in the *server-side*
directory are what another machine writing into the share looks like from the client.

Nothing of the system is configured: the server has its own host key, its own authorized key,
its own config and pid file in a temporary directory, and listens on a free port of 127.0.0.1.
The one exception: ``sshd`` started as root insists on its privilege separation directory
``/run/sshd`` (what the Debian unit's ``RuntimeDirectory`` makes); it is created when missing.

Needs Debian's ``openssh-server`` and ``sshfs`` (which brings ``fuse3``) and a usable
``/dev/fuse``; :func:`missing_requirements` says what is missing so tests can skip.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SBIN_PATH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin"))
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT_S = 15.0
UNMOUNT_TIMEOUT_S = 10.0

# The sshfs defaults, spelled out where a test depends on them (sshfs(1), "-o dcache_timeout").
SSHFS_CACHE_TIMEOUT_S = 20.0
KERNEL_ATTR_TIMEOUT_S = 1.0
NO_CACHE_OPTIONS = ("dir_cache=no", "attr_timeout=0", "entry_timeout=0")


def _which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


def missing_requirements() -> str | None:
    """Why a loopback sshfs mount cannot be made here, or None when it can."""
    for tool, package in (("sshd", "openssh-server"), ("ssh", "openssh-client"),
                          ("ssh-keygen", "openssh-client"), ("sshfs", "sshfs")):
        if _which(tool) is None:
            return f"{tool} not found (install Debian's {package})"
    if _which("fusermount3") is None and _which("fusermount") is None:
        return "fusermount3 not found (install Debian's fuse3)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not usable by this user (no FUSE in this container?)"
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(mode=0o755)
        except OSError as exc:
            return f"sshd as root needs {PRIVSEP_DIR}: {exc.strerror}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)  # the poll step of a deadline-bounded wait


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _keygen(path: Path) -> str:
    """A fresh ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run([str(_which("ssh-keygen")), "-q", "-t", "ed25519", "-N", "", "-C",
                    "bgcut-watchd-tests", "-f", str(path)], check=True, capture_output=True)
    return path.with_suffix(".pub").read_text("ascii").strip()


_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {home}/host_key
PidFile {home}/sshd.pid
AuthorizedKeysFile {home}/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers {user}
Subsystem sftp internal-sftp
LogLevel ERROR
"""


class SshServer:
    """A private sshd on 127.0.0.1 that lets only the fixture's own key in."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.user = getpass.getuser()
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SshServer:
        """Generate the keys and config, start sshd, wait until it accepts connections.

        Raises RuntimeError when it does not come up (its stderr is in ``sshd.log``)."""
        self.home.mkdir(parents=True, exist_ok=True)
        host_public = _keygen(self.home / "host_key")
        (self.home / "authorized_keys").write_text(_keygen(self.home / "client_key") + "\n")
        self.port = _free_port()
        (self.home / "sshd_config").write_text(
            _SSHD_CONFIG.format(port=self.port, home=self.home, user=self.user))
        (self.home / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_public}\n")
        with (self.home / "sshd.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [str(_which("sshd")), "-D", "-e", "-f", str(self.home / "sshd_config")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            _wait_until(lambda: self._exited() or _accepts(self.port), START_TIMEOUT_S, "sshd")
            if self._exited():
                raise RuntimeError(f"sshd exited: {self.log_text()}")
        except BaseException:
            self.stop()
            raise
        return self

    def ssh_options(self) -> list[str]:
        """The client options: this server's key and known host only, never a prompt."""
        return ["-p", str(self.port), "-F", "/dev/null",
                "-o", f"IdentityFile={self.home / 'client_key'}", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.home / 'known_hosts'}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]

    def log_text(self) -> str:
        return (self.home / "sshd.log").read_text("utf-8", "replace")

    def _exited(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def stop(self) -> None:
        """Stop sshd (the listener; sessions end with their mounts). Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None


@dataclass(frozen=True)
class Share:
    """One mounted share: ``server`` is the server's directory, ``client`` its mount point."""

    server: Path
    client: Path
    options: tuple[str, ...]


def _is_mounted(mountpoint: Path) -> bool:
    """True when ``mountpoint`` is listed in mountinfo (``os.path.ismount`` may hang on a
    dead FUSE mount; reading mountinfo never does)."""
    target = os.fsencode(os.path.realpath(mountpoint)).replace(b" ", b"\\040")
    with open("/proc/self/mountinfo", "rb") as fp:
        return any(line.split(b" ")[4] == target for line in fp)


def mount(server: SshServer, server_dir: Path, mountpoint: Path,
          options: tuple[str, ...] = ()) -> tuple[Share, subprocess.Popen[bytes]]:
    """Mount ``server_dir`` (on the server) at ``mountpoint`` with sshfs, in the foreground.

    ``options`` are extra ``-o`` options (none: sshfs's defaults, caches on). Raises
    RuntimeError when the mount does not appear (the sshfs process is stopped again).
    """
    server_dir.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    extra = [arg for option in options for arg in ("-o", option)]
    command = [str(_which("sshfs")), "-f", f"{server.user}@127.0.0.1:{server_dir}",
               str(mountpoint), *server.ssh_options(), *extra]
    log_path = server.home / f"sshfs-{mountpoint.name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_until(lambda: proc.poll() is not None or _is_mounted(mountpoint),
                    START_TIMEOUT_S, f"the sshfs mount at {mountpoint}")
        if proc.poll() is not None:
            raise RuntimeError(f"sshfs exited: {log_path.read_text('utf-8', 'replace')}")
    except BaseException:
        unmount(proc, mountpoint)
        raise
    return Share(server_dir, mountpoint, options), proc


def unmount(proc: subprocess.Popen[bytes], mountpoint: Path) -> None:
    """Unmount (``fusermount -u``, else a lazy ``umount -l``) and reap the sshfs process."""
    fusermount = _which("fusermount3") or _which("fusermount")
    if _is_mounted(mountpoint):
        done = subprocess.run([str(fusermount), "-u", "-z", str(mountpoint)],
                              capture_output=True, check=False)
        if done.returncode != 0 and _is_mounted(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
    try:
        proc.wait(timeout=UNMOUNT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=UNMOUNT_TIMEOUT_S)


@contextlib.contextmanager
def mounted(server: SshServer, server_dir: Path, mountpoint: Path,
            options: tuple[str, ...] = ()) -> Iterator[Share]:
    """:func:`mount` for the duration of a ``with`` block; unmounted even on failure."""
    share, proc = mount(server, server_dir, mountpoint, options)
    try:
        yield share
    finally:
        unmount(proc, mountpoint)
