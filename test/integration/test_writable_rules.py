"""Focused checks of the writable layer's rules, each beside kernel overlayfs.

Each scenario runs on a fresh kernel overlayfs mount and a fresh layerfs mount
over the same lowers and must give the same observations; some also check
the upper dir's format and layerfs-only promises (st_ino kept on copy-up,
nothing written to the lowers, holes kept by copy-up).
"""
import errno
import os
import stat
import subprocess
import time

import harness
import stacks

KERNEL_OPTS = ["redirect_dir=on", "index=off", "metacopy=off"]


def observe(fn, root):
    try:
        return ("ok", fn(root))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def run_both(tmp, lowers, name, fn, problems, check_upper=None):
    """Runs fn(root) on both implementations; outcomes must be equal."""
    results = {}
    for impl in ("kernel", "layerfs"):
        base = os.path.join(tmp, f"{name}-{impl}")
        u, w, m = (os.path.join(base, x) for x in ("u", "w", "m"))
        for d in (u, w, m):
            os.makedirs(d)
        ctx = harness.kernel_overlay(m, lowers, u, w, KERNEL_OPTS) if impl == "kernel" \
            else harness.layerfs(m, lowers, u, w)
        with ctx:
            results[impl] = observe(fn, m)
            view = harness.snapshot(m)
        results[impl + "-view"] = view
        if check_upper and impl == "layerfs":
            check_upper(u, problems)
    if results["kernel"] != results["layerfs"]:
        problems.append(f"{name}: kernel {str(results['kernel'])[:300]} "
                        f"layerfs {str(results['layerfs'])[:300]}")
    problems += [f"{name}: {p}" for p in
                 harness.compare(settle(results["kernel-view"]), settle(results["layerfs-view"]),
                                 "layerfs")]


START_NS = time.time_ns()


def settle(view):
    """Times set to "now" by a scenario differ between two runs: keep only
    that they are recent; every older time must match exactly."""
    for attrs in view.values():
        if attrs["mtime_ns"] >= START_NS:
            attrs["mtime_ns"] = "recent"
    return view


def st(path):
    s = os.lstat(path)
    return (stat.S_IFMT(s.st_mode), oct(stat.S_IMODE(s.st_mode)), s.st_uid, s.st_gid,
            s.st_size, s.st_nlink if not stat.S_ISDIR(s.st_mode) else 0)


# --- scenarios: each returns what it observed --------------------------------

def copy_up_keeps_metadata(m):
    p = os.path.join(m, "usr/bin/tool")  # setuid, from the bottom layer
    before = st(p)
    with open(p, "ab") as f:
        f.write(b"more")
    return [before, st(p), os.getxattr(os.path.join(m, "etc/passwd"), "user.origin")]


def open_for_read_does_not_copy(m):
    with open(os.path.join(m, "etc/passwd"), "rb") as f:
        data = f.read()
    return len(data)


def unlink_lower_then_recreate(m):
    p = os.path.join(m, "srv/data/fresh")
    os.unlink(p)
    gone = os.path.exists(p)
    with open(p, "w") as f:
        f.write("again")
    return [gone, open(p).read(), sorted(os.listdir(os.path.join(m, "srv/data")))]


def rmdir_and_mkdir_is_opaque(m):
    d = os.path.join(m, "usr/lib/x")
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    os.rmdir(d)
    os.mkdir(d)
    open(os.path.join(d, "only"), "w").close()
    return sorted(os.listdir(d))


def rename_lower_dir(m):
    os.rename(os.path.join(m, "usr/lib"), os.path.join(m, "lib-moved"))
    os.rename(os.path.join(m, "lib-moved/x"), os.path.join(m, "etc/x-moved"))
    return [sorted(os.listdir(os.path.join(m, "etc/x-moved"))),
            os.path.exists(os.path.join(m, "usr/lib")),
            open(os.path.join(m, "etc/x-moved/lib5.so"), "rb").read()]


def hard_links(m):
    a = os.path.join(m, "etc/passwd")
    b = os.path.join(m, "etc/passwd-link")
    os.link(a, b)
    with open(b, "a") as f:
        f.write("via b\n")
    sa, sb = os.lstat(a), os.lstat(b)
    return [sa.st_ino == sb.st_ino, sa.st_nlink, open(a).read() == open(b).read()]


def unlinked_open_file(m):
    p = os.path.join(m, "etc/passwd")
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        os.pwrite(fd, b"still here", 0)
        s = os.fstat(fd)
        return [s.st_nlink, os.pread(fd, 10, 0), os.path.exists(p)]
    finally:
        os.close(fd)


def truncate_and_times(m):
    p = os.path.join(m, "var/log/old.log")
    os.truncate(p, 3)
    os.utime(p, ns=(1_600_000_000_111_111_111, 1_600_000_000_222_222_222))
    q = os.path.join(m, "srv/sparse")
    fd = os.open(q, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    return [st(p), os.lstat(p).st_mtime_ns, st(q)]


def exchange_and_noreplace(m):
    from differential import renameat2, RENAME_EXCHANGE, RENAME_NOREPLACE
    out = []
    renameat2(os.path.join(m, "etc"), os.path.join(m, "app"), RENAME_EXCHANGE)
    out.append(sorted(os.listdir(os.path.join(m, "etc"))))
    try:
        renameat2(os.path.join(m, "usr"), os.path.join(m, "var"), RENAME_NOREPLACE)
    except OSError as e:
        out.append(errno.errorcode[e.errno])
    return out


def errors_like_ext4(m):
    out = []
    for fn in (lambda: os.mkdir(os.path.join(m, "x" * 256)),
               lambda: os.rmdir(os.path.join(m, "usr")),
               lambda: os.rename(os.path.join(m, "usr"), os.path.join(m, "usr/lib/inside")),
               lambda: os.unlink(os.path.join(m, "usr")),
               lambda: os.rmdir(os.path.join(m, "etc/passwd")),
               lambda: os.mkdir(os.path.join(m, "etc")),
               lambda: os.rename(os.path.join(m, "etc/passwd"), os.path.join(m, "usr"))):
        try:
            fn()
            out.append("ok")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    return out


def xattrs_and_acl(m):
    p = os.path.join(m, "usr/lib/x/lib1.so")
    os.setxattr(p, "user.new", b"v")
    os.removexattr(os.path.join(m, "etc/passwd"), "user.origin")
    subprocess.run(["setfacl", "-m", "u:1234:r", p], check=True)
    acl = subprocess.run(["getfacl", "-c", p], capture_output=True, text=True).stdout
    return [sorted(os.listxattr(p)), acl]


def setuid_cleared_by_unprivileged_write(m):
    p = os.path.join(m, "usr/bin/tool")
    os.chmod(p, 0o4777)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(1000)
            os.setuid(1000)
            with open(p, "ab") as f:
                f.write(b"x")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return [status, oct(os.lstat(p).st_mode)]


def sticky_dir(m):
    d = os.path.join(m, "tmp")
    os.mkdir(d)
    os.chmod(d, 0o1777)
    f = os.path.join(d, "roots")
    open(f, "w").close()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(1000)
            os.setuid(1000)
            os.unlink(f)
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return [os.waitstatus_to_exitcode(status), os.path.exists(f)]


def seek_and_copy_range(m):
    src = os.path.join(m, "srv/sparse")  # 5 MiB hole, then "end"
    fd = os.open(src, os.O_RDONLY)
    try:
        data = os.lseek(fd, 0, os.SEEK_DATA)
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        dst = os.open(os.path.join(m, "copied"), os.O_CREAT | os.O_WRONLY, 0o644)
        n = os.copy_file_range(fd, dst, 3, 5 << 20)
        os.fsync(dst)
        os.close(dst)
    finally:
        os.close(fd)
    dfd = os.open(os.path.join(m, "srv"), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    # Reporting the whole file as data is allowed (layerfs does under the
    # writeback cache); a data offset inside the hole is not.
    return [data == 0 or data >= 4 << 20, hole, n,
            open(os.path.join(m, "copied"), "rb").read()]


def check_upper_format(u, problems):
    for dirpath, dirnames, filenames in os.walk(u):
        for n in filenames:
            p = os.path.join(dirpath, n)
            s = os.lstat(p)
            if stat.S_ISCHR(s.st_mode) and s.st_rdev != 0:
                problems.append(f"odd device in upper: {p}")


SCENARIOS = [copy_up_keeps_metadata, open_for_read_does_not_copy, unlink_lower_then_recreate,
             rmdir_and_mkdir_is_opaque, rename_lower_dir, hard_links, unlinked_open_file,
             truncate_and_times, exchange_and_noreplace, errors_like_ext4, xattrs_and_acl,
             setuid_cleared_by_unprivileged_write, sticky_dir, seek_and_copy_range]


def layerfs_only(tmp, lowers, problems):
    """Promises kernel overlayfs does not make the same way."""
    base = os.path.join(tmp, "own")
    u, w, m = (os.path.join(base, x) for x in ("u", "w", "m"))
    for d in (u, w, m):
        os.makedirs(d)
    with harness.layerfs(m, lowers, u, w):
        p = os.path.join(m, "usr/lib/x/lib7.so")
        ino = os.lstat(p).st_ino
        with open(p, "ab") as f:
            f.write(b"!")
        if os.lstat(p).st_ino != ino:
            problems.append("st_ino changed on copy-up")
        os.link(p, os.path.join(m, "lib7-link"))
        with open(os.path.join(m, "srv/sparse"), "r+b") as f:
            f.write(b"head")
    sparse = os.lstat(os.path.join(u, "srv/sparse"))
    if sparse.st_blocks * 512 > 1 << 20:
        problems.append(f"copy-up filled the holes: {sparse.st_blocks} blocks")
    with harness.layerfs(m, lowers, u, w, extra=["writeback=0"]):
        # without the writeback cache the layer's holes are reported
        fd = os.open(os.path.join(m, "srv/sparse"), os.O_RDONLY)
        try:
            data = os.lseek(fd, 1 << 20, os.SEEK_DATA)
        finally:
            os.close(fd)
        if data < 4 << 20:
            problems.append(f"writeback=0: SEEK_DATA from 1 MiB gives {data}, not the "
                            f"data after the hole")
    with harness.layerfs(m, lowers, u, w):  # after a remount
        a = os.lstat(os.path.join(m, "usr/lib/x/lib7.so"))
        b = os.lstat(os.path.join(m, "lib7-link"))
        if a.st_ino != ino or b.st_ino != ino or a.st_nlink != 2:
            problems.append(f"after remount: st_ino {a.st_ino}/{b.st_ino} (was {ino}), "
                            f"nlink {a.st_nlink}")


def main():
    harness.start(600)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"), xattr_whiteouts=False)
        with harness.lowers_unchanged(lowers, problems):
            for fn in SCENARIOS:
                run_both(tmp, lowers, fn.__name__, fn, problems, check_upper_format)
            layerfs_only(tmp, lowers, problems)
        print(f"{len(SCENARIOS)} scenarios compared")
    harness.check(problems)


if __name__ == "__main__":
    main()
