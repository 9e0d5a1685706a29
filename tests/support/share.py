"""A real network share on this machine: sshd on 127.0.0.1 and sshfs mounts of one server folder.

The kernel's NFS and CIFS clients are not available here, but FUSE is: `sshfs` against a local
`openssh-server` is a real network filesystem with its own semantics (no inotify for writes made
elsewhere, its own rename and link calls over SFTP, attribute caching). Each `SshfsMount` of the
same server folder is what one machine sees of the share; a daemon started by `host_daemon` runs
in its own UTS namespace with its own host name, so two of them are two machines on one share.

Everything lives in one temp directory: the server's host key, the client's key, the
authorized_keys and known_hosts files, the sshd config and log. Nothing outside it is changed,
except that sshd needs its privilege-separation folder (/run/sshd, which the Debian service
creates at boot) and it is made when missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.daemon import DaemonProcess, wait_until
from tests.support.net import free_port

#: What the share tests need, by command, with the Debian package that provides it.
TOOLS = {"sshd": "openssh-server", "ssh-keygen": "openssh-client", "sshfs": "sshfs",
         "fusermount3": "fuse3", "unshare": "util-linux", "hostname": "hostname"}

#: Where sshd and other admin tools live when /usr/sbin is not on PATH.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

#: sshfs options, each for a reason:
#: - reconnect: after the server comes back, sshfs opens a new SSH connection by itself; without
#:   it sshfs exits with the connection and the mount answers ENOTCONN until remounted.
#: - dir_cache=no: sshfs otherwise caches names and attributes for 20 s (dcache_timeout), so one
#:   host would see the other's claims (renames) and lease rewrites up to 20 s late. The
#:   kernel's own FUSE caches (entry/attr_timeout, 1 s) stay: far below the lease.
SSHFS_OPTIONS = ("reconnect", "dir_cache=no")

#: ssh client settings for the mount, each for a reason:
#: - ServerAliveInterval/CountMax: a server that is gone is noticed in about 3 s, not after
#:   TCP's minutes, so calls on the share fail (EIO) instead of hanging.
#: - ConnectTimeout: a reconnect attempt to a server that does not answer gives up quickly.
#: - BatchMode, IdentitiesOnly, StrictHostKeyChecking: only our key, only our server, never a
#:   prompt (a prompt during a reconnect would hang the mount).
SSH_CLIENT_OPTIONS = {"ServerAliveInterval": "1", "ServerAliveCountMax": "3", "ConnectTimeout": "3",
                      "BatchMode": "yes", "IdentitiesOnly": "yes", "StrictHostKeyChecking": "yes"}

#: The script a host's daemon runs under: its own UTS namespace (`unshare --uts`, exec'd, so
#: the process the test holds is the daemon itself) with the host name given as $0.
_AS_HOST = ("import os, sys; os.execvp('unshare', ['unshare', '--uts', 'sh', '-c', "
            "'hostname \"$0\" && exec \"$@\"', sys.argv[1], sys.executable, '-m', 'transcribed', "
            "*sys.argv[2:]])")


def missing_tools() -> list[str]:
    """What this machine lacks to run a share test, each with how to get it (empty: all here)."""
    missing = [f"{tool} (Debian package {package})" for tool, package in TOOLS.items()
               if shutil.which(tool, path=SBIN_PATH) is None]
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse (the fuse kernel module, or --device /dev/fuse in a container)")
    if os.geteuid() != 0:
        missing.append("root (unshare --uts needs CAP_SYS_ADMIN)")
    return missing


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (sshd's per-connection children), deepest last."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(child) for child in children]
        todo += [int(child) for child in children]
    return found


@dataclass
class SshServer:
    """An sshd on 127.0.0.1 only, with its own host key, accepting only its own client key."""

    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.root / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def client_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    def start(self) -> SshServer:
        """Make the keys on first start, then serve; a later start keeps the port and keys (a
        server that comes back, as clients expect it to)."""
        if not self.client_key.exists():
            self._make_keys()
        if self.port == 0:
            self.port = free_port()
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        self._write_configs()
        sshd = shutil.which("sshd", path=SBIN_PATH)
        assert sshd is not None, "sshd is not installed (Debian package openssh-server)"
        # sshd must be started by its absolute path (it re-executes itself per connection).
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(self.root / "sshd_config"),
                                         "-E", str(self.log)], stdin=subprocess.DEVNULL)
        wait_until(lambda: self._serving(), 15, f"sshd on 127.0.0.1:{self.port}")
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"sshd exited ({self.process.returncode}): {self.log_text()[-2000:]}")
        return _listening(self.port)

    def stop(self) -> None:
        """The server goes away: the listener and every connection it serves (SIGKILL, as a
        crash or a pulled cable would; no goodbye is sent to the clients)."""
        if self.process is None or self.process.poll() is not None:
            return
        for pid in [self.process.pid, *_descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _make_keys(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key,
                            "-f", str(self.root / key)], check=True)
        authorized = self.root / "authorized_keys"
        authorized.write_text((self.root / "client_key.pub").read_text())
        authorized.chmod(0o600)

    def _write_configs(self) -> None:
        # StrictModes off: the temp folder's modes are not sshd's business; everything else is
        # the narrowest server that lets our one key in over SFTP.
        (self.root / "sshd_config").write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.port}", f"HostKey {self.root / 'host_key'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", f"PidFile {self.root / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "PermitRootLogin prohibit-password", "StrictModes no", "Subsystem sftp internal-sftp",
            "ClientAliveInterval 1", "ClientAliveCountMax 3", ""]))
        host_key = (self.root / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        options = {"Port": str(self.port), "IdentityFile": str(self.client_key),
                   "UserKnownHostsFile": str(self.known_hosts), **SSH_CLIENT_OPTIONS}
        self.client_config.write_text("Host 127.0.0.1\n" + "".join(
            f"    {key} {value}\n" for key, value in options.items()))


@dataclass
class SshfsMount:
    """One machine's view of the share: `remote` on the server, mounted at `mountpoint`."""

    server: SshServer
    remote: Path
    mountpoint: Path
    options: tuple[str, ...] = SSHFS_OPTIONS
    _log: list[str] = field(default_factory=list)

    def mount(self) -> SshfsMount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                         text=True, check=True).stdout.strip()
        done = subprocess.run(["sshfs", "-F", str(self.server.client_config), "-o", ",".join(self.options),
                               f"{user}@127.0.0.1:{self.remote}", str(self.mountpoint)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"sshfs failed ({done.returncode}): {done.stderr}"
        wait_until(lambda: self.mounted(), 10, f"the sshfs mount at {self.mountpoint}")
        return self

    def mounted(self) -> bool:
        """Is an sshfs mount at the mount point (as the kernel lists it)?"""
        target = os.path.realpath(self.mountpoint)
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == target and parts[2] == "fuse.sshfs":
                return True
        return False

    def unmount(self, lazy: bool = False) -> None:
        """Detach the mount (`lazy`: at once, even while files on it are open, as `umount -l`)."""
        if self.mounted():
            subprocess.run(["fusermount3", "-u", *(["-z"] if lazy else []), str(self.mountpoint)],
                           check=True, capture_output=True, timeout=30)
            wait_until(lambda: not self.mounted(), 10, f"{self.mountpoint} to be unmounted")

    def release(self) -> None:
        """Teardown: unmount whatever state the mount is in (busy or its server gone: lazily)."""
        with contextlib.suppress(subprocess.SubprocessError, AssertionError):
            self.unmount()
        with contextlib.suppress(subprocess.SubprocessError, AssertionError):
            self.unmount(lazy=True)


def run_as_host(host: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`transcribed ARGS` run as machine `host` (its own UTS namespace), as an operator's shell there."""
    return subprocess.run([sys.executable, "-c", _AS_HOST, host, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def host_daemon(config: Path, host: str, env: dict[str, str]) -> DaemonProcess:
    """The daemon (fake engine) as machine `host`: a child in its own UTS namespace named `host`."""
    return DaemonProcess(config, engine="fake", env=env, python_args=["-c", _AS_HOST, host])

