"""Shared pieces of the mount tests.

Skip rules (exit 77 when not root or without /dev/fuse), private temp dirs
that are always unmounted and removed, layerfs and kernel-overlayfs mounts
with timeouts, and a snapshot of a tree (every attribute a view is compared
on). Every test runs under an alarm so that a hang becomes a failure that
still unmounts on the way out.
"""
import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

SKIP = 77
LAYERFS = os.environ.get("LAYERFS", "layerfs")
LAYERCTL = os.environ.get("LAYERCTL", "layerctl")
# Options added to every layerfs mount of a run (e.g. io_uring=on), to run
# the suites over another transport: LAYERFS_OPTIONS=io_uring=on meson test.
EXTRA_OPTIONS = [o for o in os.environ.get("LAYERFS_OPTIONS", "").split(",") if o]


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def require_mount_privileges():
    if os.geteuid() != 0:
        skip("needs root")
    if not os.path.exists("/dev/fuse"):
        skip("no /dev/fuse")


def require_tools(*names):
    """Skips the test unless every program named is installed."""
    for name in names:
        if not shutil.which(name):
            skip(f"{name} is not installed")


def _on_alarm(signum, frame):
    raise TimeoutError("test timed out")


def kernel_at_least(major, minor):
    """Whether the running kernel is major.minor or newer."""
    parts = os.uname().release.split(".")
    return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)


def start(seconds=240):
    """Checks prerequisites and arms the test's overall timeout."""
    require_mount_privileges()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)


def mounts():
    """Mount points currently listed in /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            out.append(fields[4].replace("\\040", " "))
    return out


def is_mounted(path):
    return os.path.realpath(path) in mounts()


def unmount(path):
    """Unmounts `path`, lazily if a normal unmount fails."""
    if not is_mounted(path):
        return
    for cmd in (["fusermount3", "-u", path], ["umount", path], ["umount", "-l", path]):
        try:
            subprocess.run(cmd, timeout=20, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, FileNotFoundError):
            continue
        if not is_mounted(path):
            return


@contextlib.contextmanager
def temp_dir():
    """A private temp dir; everything mounted below it is unmounted at exit.
    Its name is lowercase hex after the prefix, so that its path is also a
    valid image reference (podman names an oci: image after its path, and
    refuses the "-_" that mkdtemp's own names may hold)."""
    while True:
        d = os.path.join(tempfile.gettempdir(), "layerfs-it-" + secrets.token_hex(6))
        try:
            os.mkdir(d, 0o700)
            break
        except FileExistsError:
            continue
    try:
        yield d
    finally:
        real = os.path.realpath(d)
        for m in sorted(mounts(), key=len, reverse=True):
            if m == real or m.startswith(real + "/"):
                unmount(m)
        shutil.rmtree(d, ignore_errors=True)


def make_dirs(base, *names):
    """Creates base/NAME for each name; returns their paths in that order."""
    paths = [os.path.join(base, n) for n in names]
    for p in paths:
        os.makedirs(p)
    return paths


def escape_lower(path):
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def layerfs_options(lowers, upper=None, work=None, extra=()):
    opts = ["lowerdir=" + ":".join(escape_lower(l) for l in lowers)]
    if upper:
        opts += [f"upperdir={upper}", f"workdir={work}"]
    opts += list(extra) + EXTRA_OPTIONS
    return ",".join(opts)


def wait_mounted(path, proc, seconds=20, log=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if is_mounted(path):
            return
        if proc is not None and proc.poll() is not None:
            if log is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
            else:
                err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"layerfs exited with {proc.returncode}: {err.strip()}")
        time.sleep(0.02)
    raise TimeoutError(f"{path} did not get mounted")


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


def daemon_problems(returncode, stderr_text):
    """What a daemon's exit says is wrong: a non-zero exit or a sanitizer report."""
    problems = []
    if returncode != 0:
        tail = " | ".join(stderr_text.strip().splitlines()[-3:])
        problems.append(f"layerfs exited with {returncode}: {tail}")
    for mark in SANITIZER_MARKS:
        if mark in stderr_text:
            line = next(l for l in stderr_text.splitlines() if mark in l)
            problems.append(f"layerfs sanitizer report: {line.strip()}")
    return problems


class DaemonFailed(RuntimeError):
    pass


@contextlib.contextmanager
def layerfs(mnt, lowers, upper=None, work=None, extra=(), preexec=None,
            stop_signal=None, killed_by=None):
    """Runs layerfs in the foreground for the body; always unmounts.

    On the way out the daemon is stopped (fusermount3 -u, or `stop_signal`)
    and must exit 0 (or die of `killed_by`, for a body that kills it on
    purpose) with no sanitizer report, else DaemonFailed is raised.
    """
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [LAYERFS, "-f", "-o", layerfs_options(lowers, upper, work, extra), mnt],
        stderr=log, preexec_fn=preexec)
    body_done = False
    try:
        wait_mounted(mnt, proc, log=log)
        yield proc
        body_done = True
    finally:
        if stop_signal is not None and proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        unmount(mnt)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
        expected = 0 if killed_by is None else -killed_by
        problems = daemon_problems(0 if proc.returncode == expected else proc.returncode, text)
        if problems and body_done:
            raise DaemonFailed("; ".join(problems))
        for p in problems:
            print(p, file=sys.stderr)


@contextlib.contextmanager
def kernel_overlay(mnt, lowers, upper=None, work=None, extra=()):
    """Mounts kernel overlayfs for the body; always unmounts."""
    opts = ["lowerdir=" + ":".join(lowers)]
    if upper:
        opts += [f"upperdir={upper}", f"workdir={work}"]
    opts += list(extra)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", ",".join(opts), mnt],
                   check=True, timeout=20)
    try:
        yield
    finally:
        unmount(mnt)


def shown_xattrs(path):
    """xattrs a merged view shows, overlay-private ones excluded."""
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in names:
        if n.startswith(("trusted.overlay.", "user.overlay.")):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = f"error {e.errno}"
    return out


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(path, st, content=True):
    """The attributes two views must agree on for one entry."""
    kind = stat.S_IFMT(st.st_mode)
    d = {
        "type": kind,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": st.st_mtime_ns,
        "xattrs": shown_xattrs(path),
    }
    if kind != stat.S_IFDIR:
        d["size"] = st.st_size
        d["nlink"] = st.st_nlink
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        d["rdev"] = st.st_rdev
    if kind == stat.S_IFLNK:
        d["target"] = os.readlink(path)
    if kind == stat.S_IFREG and content:
        try:
            d["sha256"] = file_digest(path)
        except PermissionError:  # a snapshot taken by an unprivileged user
            d["sha256"] = "unreadable"
    return d


def snapshot(root, content=True):
    """{relative path: attributes} for every entry below root (root as '.')."""
    out = {".": describe(root, os.lstat(root), content)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            try:
                out[os.path.relpath(p, root)] = describe(p, os.lstat(p), content)
            except PermissionError:  # taken by an unprivileged user
                out[os.path.relpath(p, root)] = {"unreadable": True}
    return out


def compare(expected, actual, what="views"):
    """Lists every difference between two snapshots; empty when equal."""
    problems = []
    for p in sorted(set(expected) | set(actual)):
        if p not in actual:
            problems.append(f"missing in {what}: {p}")
        elif p not in expected:
            problems.append(f"extra in {what}: {p}")
        elif expected[p] != actual[p]:
            diffs = {k: (expected[p].get(k), actual[p].get(k))
                     for k in set(expected[p]) | set(actual[p])
                     if expected[p].get(k) != actual[p].get(k)}
            problems.append(f"differs in {what}: {p}: {diffs}")
    return problems


def check(problems):
    """Prints problems and exits non-zero if there are any."""
    for p in problems:
        print(p)
    if problems:
        print(f"FAIL: {len(problems)} problem(s)")
        sys.exit(1)
    print("ok")


def tree_digest(root):
    """A digest of a tree's names, attributes and content (lower unchanged?)."""
    snap = snapshot(root)
    h = hashlib.sha256()
    for p in sorted(snap):
        h.update(repr((p, sorted(snap[p].items()))).encode())
    return h.hexdigest()


@contextlib.contextmanager
def lowers_unchanged(lowers, problems):
    """Records a problem if any layer dir differs after the body."""
    before = [tree_digest(l) for l in lowers]
    yield
    if [tree_digest(l) for l in lowers] != before:
        problems.append("a lower layer changed")


def as_user(fn, uid):
    """Runs fn() in a child with uid and gid `uid` and no groups; returns what
    fn returned (through JSON), or a text saying why the child failed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            out = fn()
        except BaseException as e:  # reported, never raised in the child
            out = f"child failed: {e!r}"
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def private_fuse_namespace(tmp):
    """Moves this process into its own mount namespace (made private) and
    binds a 0666 node of /dev/fuse (c 10 229, as distros ship it) over
    /dev/fuse there, so that unprivileged users can mount FUSE; nothing
    outside the namespace changes. Skips the test where that is refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        skip(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, timeout=20)
    node = os.path.join(tmp, "fuse")
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(10, 229))
    os.chmod(node, 0o666)
    subprocess.run(["mount", "--bind", node, "/dev/fuse"], check=True, timeout=20)
