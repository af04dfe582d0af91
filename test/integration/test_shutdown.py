"""Shutdown: however the daemon is asked to stop, it unmounts and exits 0,
and it never leaves a dead (ENOTCONN) mount behind.

  - SIGTERM, SIGINT and SIGHUP, to a foreground and to a daemonized layerfs
  - fusermount3 -u while files are open: refused (busy) and the mount keeps
    serving those files; after they close, it unmounts and the daemon exits 0
  - fusermount3 -u -z (lazy) with files open: the open files keep working,
    the daemon exits 0 once the last one closes
"""
import os
import signal
import subprocess
import time

import harness


def pid_of_mount(mnt):
    """The daemon serving mnt (daemonized mode): found by its command line."""
    real = os.path.realpath(mnt)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"layerfs" and real.encode() in argv:
            return int(pid)
    return None


def wait_gone(pid, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def signals(tmp, lower, problems):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        u, w, m = (os.path.join(tmp, f"{n}-{sig.name}") for n in ("u", "w", "m"))
        for d in (u, w, m):
            os.makedirs(d)
        try:
            with harness.layerfs(m, [lower], u, w, stop_signal=sig):
                with open(os.path.join(m, "new"), "w") as f:
                    f.write("x")
        except harness.DaemonFailed as e:
            problems.append(f"foreground {sig.name}: {e}")
        if harness.is_mounted(m):
            problems.append(f"foreground {sig.name}: mount left behind")
            harness.unmount(m)
        # daemonized (the form podman runs): the parent exits once mounted
        r = subprocess.run([harness.LAYERFS, "-o", harness.layerfs_options([lower], u, w), m],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            problems.append(f"daemonized mount: exit {r.returncode}: {r.stderr.strip()}")
            continue
        pid = pid_of_mount(m)
        if pid is None:
            problems.append("daemonized layerfs: no process found")
            harness.unmount(m)
            continue
        os.kill(pid, sig)
        if not wait_gone(pid):
            problems.append(f"daemonized {sig.name}: daemon still running")
        if harness.is_mounted(m):
            problems.append(f"daemonized {sig.name}: mount left behind")
            harness.unmount(m)


def busy_unmount(tmp, lower, problems):
    u, w, m = (os.path.join(tmp, n) for n in ("u-busy", "w-busy", "m-busy"))
    for d in (u, w, m):
        os.makedirs(d)
    with harness.layerfs(m, [lower], u, w) as proc:
        reader = open(os.path.join(m, "lowerfile"), "rb")
        writer = open(os.path.join(m, "written"), "wb")
        r = subprocess.run(["fusermount3", "-u", m], capture_output=True, text=True, timeout=20)
        if r.returncode == 0 or not harness.is_mounted(m):
            problems.append("fusermount3 -u of a busy mount was not refused")
        writer.write(b"after a refused unmount")
        writer.close()
        if reader.read() != b"lower data\n":
            problems.append("an open file stopped working after a refused unmount")
        reader.close()
        if proc.poll() is not None:
            problems.append(f"the daemon exited ({proc.returncode}) on a refused unmount")
    with open(os.path.join(u, "written"), "rb") as f:
        if f.read() != b"after a refused unmount":
            problems.append("a write after a refused unmount did not reach the upper")


def lazy_unmount(tmp, lower, problems):
    u, w, m = (os.path.join(tmp, n) for n in ("u-lazy", "w-lazy", "m-lazy"))
    for d in (u, w, m):
        os.makedirs(d)
    log = os.path.join(tmp, "lazy.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [harness.LAYERFS, "-f", "-o", harness.layerfs_options([lower], u, w), m],
            stderr=err)
    try:
        harness.wait_mounted(m, proc)
        reader = open(os.path.join(m, "lowerfile"), "rb")
        writer = open(os.path.join(m, "lazy-written"), "wb")
        subprocess.run(["fusermount3", "-u", "-z", m], check=True, timeout=20)
        if harness.is_mounted(m):
            problems.append("fusermount3 -u -z left the mount in the namespace")
        writer.write(b"written after a lazy unmount")
        writer.close()
        if reader.read() != b"lower data\n":
            problems.append("an open file stopped working after a lazy unmount")
        reader.close()
        rc = proc.wait(timeout=30)
        with open(log, errors="replace") as f:
            problems += [f"lazy unmount: {p}" for p in harness.daemon_problems(rc, f.read())]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        harness.unmount(m)
    with open(os.path.join(u, "lazy-written"), "rb") as f:
        if f.read() != b"written after a lazy unmount":
            problems.append("a write after a lazy unmount did not reach the upper")


def main():
    harness.start(300)
    # An ignored SIGHUP (a run under nohup) is inherited by every daemon
    # started here, and libfuse leaves an ignored signal ignored.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    problems = []
    with harness.temp_dir() as tmp:
        lower = os.path.join(tmp, "lower")
        os.makedirs(lower)
        with open(os.path.join(lower, "lowerfile"), "wb") as f:
            f.write(b"lower data\n")
        signals(tmp, lower, problems)
        busy_unmount(tmp, lower, problems)
        lazy_unmount(tmp, lower, problems)
        print("SIGTERM/SIGINT/SIGHUP (foreground and daemonized), busy and lazy unmounts")
    harness.check(problems)


if __name__ == "__main__":
    main()
