"""Hostile layers and races: nothing outside the layer dirs is ever read
or written through the daemon, whatever the layers hold.

A lower holds `etc -> /`, `a -> ../../..`, absolute symlinks into a
sentinel tree outside every layer, symlink loops and a `..` link; the
mount works on each of them with calls that do not follow a final symlink
(lchown, utime, xattrs, rename, link, unlink, copy-up) while a second
process keeps swapping a directory of the upper with a symlink to the
sentinel. The sentinel (names, modes, owners, times, content) must be
unchanged and hold no new entry. `.wh.` names cannot be made through the
mount. Devices and set-id bits follow the mount options (nodev, nosuid)
and the caller's privileges (an unprivileged caller may not mknod a device,
chown, or set a set-id bit on a file it does not own).
"""
import ctypes
import errno
import os
import stat
import subprocess
import threading
import time

import harness

_libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2


def exchange(a, b):
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def attempt(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def build(tmp):
    sentinel = os.path.join(tmp, "sentinel")
    os.makedirs(os.path.join(sentinel, "dir"))
    with open(os.path.join(sentinel, "secret"), "w") as f:
        f.write("secret\n")
    os.chmod(os.path.join(sentinel, "secret"), 0o600)
    lower = os.path.join(tmp, "lower")
    os.makedirs(os.path.join(lower, "d"))
    links = {"etc": "/", "a": "../../..", "abs": sentinel, "absdir": sentinel + "/dir",
             "abssecret": sentinel + "/secret", "loop1": "loop2", "loop2": "loop1",
             "self": "self", "d/up": ".."}
    for name, target in links.items():
        os.symlink(target, os.path.join(lower, name))
    with open(os.path.join(lower, "d", "file"), "w") as f:
        f.write("in d\n")
    os.mknod(os.path.join(lower, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with open(os.path.join(lower, "rootfile"), "w") as f:
        f.write("root's\n")
    return sentinel, lower, links


def nofollow_ops(m, links):
    out = []
    for name in links:
        p = os.path.join(m, name)
        out.append((name, "readlink", attempt(lambda: os.readlink(p))))
        out.append((name, "lchown", attempt(lambda: os.chown(p, 7, 7, follow_symlinks=False))))
        out.append((name, "lutime", attempt(lambda: os.utime(p, ns=(1, 1), follow_symlinks=False))))
        out.append((name, "lsetxattr", attempt(
            lambda: os.setxattr(p, "trusted.k", b"v", follow_symlinks=False))))
        out.append((name, "open nofollow", attempt(
            lambda: os.close(os.open(p, os.O_RDONLY | os.O_NOFOLLOW)))))
        out.append((name, "link", attempt(lambda: os.link(p, p + ".hl", follow_symlinks=False))))
        out.append((name, "rename", attempt(lambda: os.rename(p, p + ".mv"))))
        out.append((name, "unlink", attempt(lambda: os.unlink(p + ".mv"))))
        out.append((name, "unlink link", attempt(lambda: os.unlink(p + ".hl"))))
    return out


def racer(upper, sentinel, stop, counter):
    """Swaps upper/race (a dir) with upper/race.swap (a symlink to the sentinel)."""
    d, s = os.path.join(upper, "race"), os.path.join(upper, "race.swap")
    while not stop.is_set():
        try:
            exchange(d, s)
            counter[0] += 1
        except OSError:
            time.sleep(0.001)


def race(m, upper, sentinel, problems):
    os.mkdir(os.path.join(m, "race"))
    os.symlink(sentinel, os.path.join(upper, "race.swap"))
    stop, counter = threading.Event(), [0]
    t = threading.Thread(target=racer, args=(upper, sentinel, stop, counter), daemon=True)
    t.start()
    ops = 0
    try:
        deadline = time.monotonic() + 5
        i = 0
        while time.monotonic() < deadline:
            i += 1
            p = os.path.join(m, "race", f"f{i % 20}")
            for fn in (lambda: open(p, "w").write("x"), lambda: os.stat(p),
                       lambda: os.chmod(p, 0o600), lambda: os.listdir(os.path.join(m, "race")),
                       lambda: os.rename(p, p + "r"), lambda: os.unlink(p + "r"),
                       lambda: os.mkdir(p + "d"), lambda: os.rmdir(p + "d")):
                attempt(fn)
                ops += 1
    finally:
        stop.set()
        t.join()
    return ops, counter[0]


def privileges(tmp, lower, problems):
    u, w, m = (os.path.join(tmp, n) for n in ("pu", "pw", "pm"))
    for d in (u, w, m):
        os.makedirs(d)
    os.chmod(u, 0o777)
    with harness.layerfs(m, [lower], u, w, extra=["nodev", "nosuid"]):
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if f" {os.path.realpath(m)} " in l)
        if "nodev" not in line or "nosuid" not in line:
            problems.append(f"nodev/nosuid not on the mount: {line.strip()}")
        r = attempt(lambda: open(os.path.join(m, "null"), "rb").read(1))
        if r != ("err", "EACCES"):
            problems.append(f"opening a device on a nodev mount: {r}, not EACCES")
        def unprivileged():
            return [attempt(fn)[1] for fn in (
                lambda: os.mknod(os.path.join(m, "dev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
                lambda: os.chown(os.path.join(m, "rootfile"), 1000, 1000),
                lambda: os.chmod(os.path.join(m, "rootfile"), 0o4755))]
        got = harness.as_user(unprivileged, 1000)
        if got != ["EPERM", "EPERM", "EPERM"]:
            problems.append(f"unprivileged caller: mknod, chown, chmod 04755 gave {got}, "
                            f"not EPERM each")


def main():
    harness.start(300)
    problems = []
    with harness.temp_dir() as tmp:
        os.chmod(tmp, 0o755)
        sentinel, lower, links = build(tmp)
        before = harness.tree_digest(sentinel)
        u, w, m = (os.path.join(tmp, n) for n in ("u", "w", "m"))
        for d in (u, w, m):
            os.makedirs(d)
        with harness.lowers_unchanged([lower], problems):
            with harness.layerfs(m, [lower], u, w):
                outcomes = nofollow_ops(m, links)
                ops, swaps = race(m, u, sentinel, problems)
                for name in (".wh.x", ".wh..wh..opq"):
                    p = os.path.join(m, name)
                    for label, fn in [("create", lambda: open(p, "w").close()),
                                      ("mkdir", lambda: os.mkdir(p)),
                                      ("symlink", lambda: os.symlink("x", p)),
                                      ("mkfifo", lambda: os.mkfifo(p)),
                                      ("rename", lambda: os.rename(os.path.join(m, "d", "file"), p)),
                                      ("link", lambda: os.link(os.path.join(m, "d", "file"), p))]:
                        if attempt(fn)[0] == "ok":
                            problems.append(f"{label} {name} through the mount succeeded")
            for dirpath, dirnames, filenames in os.walk(u):
                for n in dirnames + filenames:
                    if n.startswith(".wh.x") or (n == ".wh..wh..opq"):
                        problems.append(f"a .wh. name reached the upper: {dirpath}/{n}")
            privileges(tmp, lower, problems)
        if harness.tree_digest(sentinel) != before:
            problems.append("the sentinel tree outside the layers changed")
        if sorted(os.listdir(sentinel)) != ["dir", "secret"] or os.listdir(
                os.path.join(sentinel, "dir")):
            problems.append(f"new entries in the sentinel: {sorted(os.listdir(sentinel))}")
        print(f"{len(outcomes)} no-follow calls on hostile symlinks, {ops} calls racing "
              f"{swaps} dir/symlink swaps in the upper; sentinel untouched")
    harness.check(problems)


if __name__ == "__main__":
    main()
