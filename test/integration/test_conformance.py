"""Regressions that outside suites and real images found, each checked
against kernel overlayfs (redirect_dir=on) on the same layers.

Every scenario runs on a kernel overlay and on a layerfs mount, each with
its own upper over one shared lower; every outcome (value or errno) and the
final merged trees must match, each upper must read the same under the
other implementation, and the daemon must exit 0 at unmount with no
sanitizer report (the harness checks). Scenarios:
  setid      set-id and sticky bits on create, mknod, mkdir, in a setgid
             dir, on copy-up, and for an unprivileged caller
  names      NAME_MAX (255-byte) and non-UTF-8 names through every call
  renames    directories renamed onto whiteouts of removed lower dirs
  links      hard links made through the mount (then unmount, and SIGTERM)
  xattrs     overlay-namespace xattrs escaped as the kernel stores them,
             and xattr error precedence on symlinks, fifos and devices
  nested     a kernel overlay stacked on the mount, as on a kernel overlay
"""
import errno
import os
import signal
import stat
import subprocess

import harness

KERNEL_OPTS = ["redirect_dir=on", "index=off", "metacopy=off"]
LONG = "n" * 255
LOWER_LONG = "l" * 255
LOWER_LONG_DIR = "d" * 255
NON_UTF8 = os.fsdecode(b"caf\xe9-latin1")
UTF8 = "café-ünïcode"
UNPRIVILEGED = 1000


def attempt(fn, *args, **kwargs):
    """("ok", value) or ("err", errno name) for one call."""
    try:
        return ("ok", fn(*args, **kwargs))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def mode_of(path):
    st = os.lstat(path)
    return (oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)


def create(path, mode, data=b""):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    os.write(fd, data)
    os.close(fd)
    return mode_of(path)


def build_lower(lower):
    os.makedirs(lower)
    def file(rel, data=b"", mode=0o644, uid=0, gid=0):
        p = os.path.join(lower, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    def mkdir(rel, mode=0o755, uid=0, gid=0):
        p = os.path.join(lower, rel)
        os.makedirs(p, exist_ok=True)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    file("f", b"lower f\n")
    file("suid", b"#!/bin/sh\n", 0o4755)
    file("sgid", b"#!/bin/sh\n", 0o2755, gid=42)
    file("usersuid", b"user's\n", 0o4755, uid=UNPRIVILEGED, gid=UNPRIVILEGED)
    file("lowerdir/x", b"x\n")
    mkdir("pop/c")
    file("pop/d", b"d\n")
    mkdir("emptydir")
    mkdir("sgiddir", 0o2777, gid=42)
    mkdir("userdir", 0o755, uid=UNPRIVILEGED, gid=UNPRIVILEGED)
    mkdir("sticky", 0o1777)
    file(LOWER_LONG, b"long\n")
    mkdir(LOWER_LONG_DIR)
    file(os.path.join(LOWER_LONG_DIR, LONG), b"deep\n")
    file(NON_UTF8, b"latin1\n")
    file(UTF8, b"utf8\n")
    os.symlink("f", os.path.join(lower, "sym"))
    os.symlink(os.fsdecode(b"target-\xff\xfe"), os.path.join(lower, "badsym"))
    os.mkfifo(os.path.join(lower, "fifo"))
    os.mknod(os.path.join(lower, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    mkdir("nest/l/d")
    file("nest/l/a", b"a\n")
    file("nest/l/d/e", b"e\n")
    file("nest/l/d2/e2", b"e2\n")
    file("nest/l/d2/keep", b"keep\n")
    mkdir("nest/u")
    mkdir("nest/w")


def scenario_setid(root):
    j = lambda *p: os.path.join(root, *p)
    out = []
    out.append(attempt(create, j("n4755"), 0o4755))
    out.append(attempt(create, j("n2755"), 0o2755))
    out.append(attempt(create, j("n6755"), 0o6755))
    out.append(attempt(create, j("n1755"), 0o1755))
    out.append(attempt(lambda: (os.mknod(j("fifo4755"), stat.S_IFIFO | 0o4755),
                                mode_of(j("fifo4755")))[1]))
    out.append(attempt(lambda: (os.mknod(j("reg6755"), stat.S_IFREG | 0o6755),
                                mode_of(j("reg6755")))[1]))
    out.append(attempt(lambda: (os.mkdir(j("d2755"), 0o2755), mode_of(j("d2755")))[1]))
    out.append(attempt(lambda: (os.mkdir(j("d1777"), 0o1777), mode_of(j("d1777")))[1]))
    out.append(attempt(create, j("sgiddir", "f2755"), 0o2755))
    out.append(attempt(lambda: (os.mkdir(j("sgiddir", "sub")), mode_of(j("sgiddir", "sub")))[1]))
    out.append(attempt(create, j("sgiddir", "sub", "deeper"), 0o640))
    # copy-up keeps set-id bits; a write by root (CAP_FSETID) keeps them too
    def append(p):
        with open(p, "ab") as f:
            f.write(b"# more\n")
        return mode_of(p)
    out.append(attempt(append, j("suid")))
    out.append(attempt(append, j("sgid")))
    out.append(attempt(lambda: (os.chown(j("sgid"), 0, 0), mode_of(j("sgid")))[1]))
    out.append(attempt(lambda: (os.chmod(j("f"), 0o6711), mode_of(j("f")))[1]))

    def unprivileged():
        res = []
        res.append(attempt(create, j("userdir", "u4755"), 0o4755))
        res.append(attempt(create, j("userdir", "u2755"), 0o2755))
        res.append(attempt(create, j("sgiddir", "u2755"), 0o2755))  # not in group 42
        res.append(attempt(lambda: (os.mkdir(j("sgiddir", "udir")),
                                    mode_of(j("sgiddir", "udir")))[1]))
        res.append(attempt(append, j("usersuid")))  # a write drops its setuid
        res.append(attempt(lambda: (os.chmod(j("userdir", "u2755"), 0o2711),
                                    mode_of(j("userdir", "u2755")))[1]))
        res.append(attempt(lambda: (os.chmod(j("sgiddir", "u2755"), 0o2755),
                                    mode_of(j("sgiddir", "u2755")))[1]))
        res.append(attempt(create, j("sticky", "mine"), 0o644))
        return res
    out.append(harness.as_user(unprivileged, UNPRIVILEGED))
    out.append(attempt(lambda: sorted(os.listdir(root))))
    return out


def scenario_names(root):
    j = lambda *p: os.path.join(root, *p)
    out = []
    calls = [
        ("create", lambda: create(j(LONG), 0o644, b"x")),
        ("stat", lambda: mode_of(j(LONG))),
        ("chmod", lambda: os.chmod(j(LONG), 0o600)),
        ("chown", lambda: os.chown(j(LONG), 12, 34)),
        ("truncate", lambda: os.truncate(j(LONG), 100)),
        ("utime", lambda: os.utime(j(LONG), ns=(10**18, 10**18))),
        ("link", lambda: os.link(j(LONG), j("m" * 255))),
        ("rename", lambda: os.rename(j("m" * 255), j("r" * 255))),
        ("unlink", lambda: os.unlink(j("r" * 255))),
        ("mkdir", lambda: os.mkdir(j("D" * 255))),
        ("mkdir-in", lambda: os.mkdir(j("D" * 255, "E" * 255))),
        ("rmdir-in", lambda: os.rmdir(j("D" * 255, "E" * 255))),
        ("rmdir", lambda: os.rmdir(j("D" * 255))),
        ("mkfifo", lambda: os.mkfifo(j("F" * 255))),
        ("mknod", lambda: os.mknod(j("N" * 255), stat.S_IFCHR | 0o600, os.makedev(1, 3))),
        ("symlink", lambda: os.symlink("t" * 255, j("S" * 255))),
        ("readlink", lambda: os.readlink(j("S" * 255))),
        ("setxattr", lambda: os.setxattr(j(LONG), "user.k", b"v")),
        ("in-lower-dir", lambda: create(j("lowerdir", LONG), 0o644)),
        ("unlink-lower", lambda: os.unlink(j(LOWER_LONG))),
        ("gone", lambda: os.lstat(j(LOWER_LONG))),
        ("recreate", lambda: create(j(LOWER_LONG), 0o600, b"new")),
        ("rename-lower", lambda: os.rename(j(LOWER_LONG_DIR, LONG), j(LOWER_LONG_DIR, "s" * 255))),
        ("rm-lower-dir", lambda: (os.unlink(j(LOWER_LONG_DIR, "s" * 255)),
                                  os.rmdir(j(LOWER_LONG_DIR)))),
        ("remake-lower-dir", lambda: os.mkdir(j(LOWER_LONG_DIR))),
        ("listed", lambda: sorted(os.listdir(j(LOWER_LONG_DIR)))),
        ("too-long", lambda: create(j("z" * 256), 0o644)),
        ("too-long-stat", lambda: os.lstat(j("z" * 256))),
        ("non-utf8-read", lambda: open(j(NON_UTF8), "rb").read()),
        ("non-utf8-rename", lambda: os.rename(j(NON_UTF8), j(os.fsdecode(b"\xfe\xff")))),
        ("non-utf8-create", lambda: create(j(os.fsdecode(b"new-\x80\x81")), 0o644, b"b")),
        ("utf8-unlink", lambda: os.unlink(j(UTF8))),
        ("badsym", lambda: os.readlink(j("badsym"))),
        ("non-utf8-symlink", lambda: os.symlink(os.fsdecode(b"\xc0\xaf"), j("badsym2"))),
    ]
    for label, fn in calls:
        out.append((label, attempt(fn)))
    out.append(("listing", sorted(os.listdir(root))))
    return out


def scenario_renames(root):
    j = lambda *p: os.path.join(root, *p)
    out = []
    steps = [
        ("mv lowerdir x", lambda: os.rename(j("lowerdir"), j("x"))),
        ("mv x lowerdir", lambda: os.rename(j("x"), j("lowerdir"))),
        ("ls lowerdir", lambda: sorted(os.listdir(j("lowerdir")))),
        ("rmdir emptydir", lambda: os.rmdir(j("emptydir"))),
        ("mkdir b", lambda: os.mkdir(j("b"))),
        ("touch b/new", lambda: create(j("b", "new"), 0o644)),
        ("mv b emptydir", lambda: os.rename(j("b"), j("emptydir"))),
        ("ls emptydir", lambda: sorted(os.listdir(j("emptydir")))),
        ("rmdir pop/c", lambda: os.rmdir(j("pop", "c"))),
        ("mkdir newdir", lambda: os.mkdir(j("newdir"))),
        ("touch newdir/k", lambda: create(j("newdir", "k"), 0o644)),
        ("mv newdir pop/c", lambda: os.rename(j("newdir"), j("pop", "c"))),
        ("ls pop/c", lambda: sorted(os.listdir(j("pop", "c")))),
        ("rm sym", lambda: os.unlink(j("sym"))),
        ("mkdir d2", lambda: os.mkdir(j("d2"))),
        ("mv d2 sym", lambda: os.rename(j("d2"), j("sym"))),
        ("rm f", lambda: os.unlink(j("f"))),
        ("mv pop f", lambda: os.rename(j("pop"), j("f"))),
        ("ls f", lambda: sorted(os.listdir(j("f")))),
        ("ls f/c", lambda: sorted(os.listdir(j("f", "c")))),
        ("rmdir userdir", lambda: os.rmdir(j("userdir"))),
        ("mv lowerdir userdir", lambda: os.rename(j("lowerdir"), j("userdir"))),
        ("mv userdir lowerdir", lambda: os.rename(j("userdir"), j("lowerdir"))),
        ("ls lowerdir again", lambda: sorted(os.listdir(j("lowerdir")))),
        ("ls root", lambda: sorted(os.listdir(root))),
    ]
    for label, fn in steps:
        out.append((label, attempt(fn)))
    return out


def scenario_links(root):
    j = lambda *p: os.path.join(root, *p)
    out = []
    for label, fn in [
        ("echo a > f2", lambda: create(j("f2"), 0o644, b"a\n")),
        ("ln f2 g2", lambda: os.link(j("f2"), j("g2"))),
        ("ln f g", lambda: os.link(j("f"), j("g"))),
        ("ln g h", lambda: os.link(j("g"), j("h"))),
        ("nlink", lambda: (os.lstat(j("f")).st_nlink, os.lstat(j("g2")).st_nlink)),
        ("rm f", lambda: os.unlink(j("f"))),
        ("mv h lowerdir/h", lambda: os.rename(j("h"), j("lowerdir", "h"))),
        ("nlink after", lambda: os.lstat(j("g")).st_nlink),
    ]:
        out.append((label, attempt(fn)))
    return out


XATTR_TARGETS = ["sym", "fifo", "null", "f", "lowerdir"]


def scenario_xattrs(root):
    j = lambda *p: os.path.join(root, *p)
    out = []
    os.symlink("f", j("newsym"))
    os.mkfifo(j("newfifo"))
    for t in XATTR_TARGETS + ["newsym", "newfifo"]:
        p = j(t)
        for name in ("user.k", "trusted.k", "security.k"):
            out.append((t, name, "set",
                        attempt(os.setxattr, p, name, b"v", 0, follow_symlinks=False)))
            out.append((t, name, "get", attempt(os.getxattr, p, name, follow_symlinks=False)))
            out.append((t, name, "remove",
                        attempt(os.removexattr, p, name, follow_symlinks=False)))
            out.append((t, name, "remove again",
                        attempt(os.removexattr, p, name, follow_symlinks=False)))
        out.append((t, "create-flag", attempt(os.setxattr, p, "user.c", b"1",
                                              os.XATTR_REPLACE, follow_symlinks=False)))
    # overlay's own names: escaped on disk, shown as given, never markers
    d = j("lowerdir")
    for name, value in [("trusted.overlay.opaque", b"y"), ("trusted.overlay.redirect", b"/pop"),
                        ("trusted.overlay.overlay.deep", b"2"), ("trusted.overlay.origin", b"o")]:
        out.append((name, "set", attempt(os.setxattr, d, name, value)))
        out.append((name, "get", attempt(os.getxattr, d, name)))
    out.append(("ls lowerdir", sorted(os.listdir(d))))
    out.append(("list", sorted(n for n in os.listxattr(d) if "overlay" in n)))
    out.append(("set whiteout", attempt(os.setxattr, j("f"), "trusted.overlay.whiteout", b"y")))
    out.append(("f still there", attempt(lambda: open(j("f"), "rb").read())))
    out.append(("remove opaque", attempt(os.removexattr, d, "trusted.overlay.opaque")))
    out.append(("get removed", attempt(os.getxattr, d, "trusted.overlay.opaque")))
    out.append(("remove absent", attempt(os.removexattr, d, "trusted.overlay.nothing")))
    out.append(("list after", sorted(n for n in os.listxattr(d) if "overlay" in n)))
    return out


def untimed(snap):
    """A snapshot without mtimes: the two mounts run the same steps at
    different instants (the differential test compares times exactly)."""
    return {p: {k: v for k, v in d.items() if k != "mtime_ns"} for p, d in snap.items()}


def stored_overlay_xattrs(upper):
    """{path: sorted trusted.overlay.overlay.* names} as the upper stores them."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in dirnames + filenames + ["."]:
            p = os.path.normpath(os.path.join(dirpath, n))
            try:
                names = os.listxattr(p, follow_symlinks=False)
            except OSError:
                continue
            esc = sorted(x for x in names if x.startswith("trusted.overlay.overlay."))
            if esc:
                found[os.path.relpath(p, upper)] = esc
    return found


def scenario_nested(root, tmp, label):
    """Overlays whose layers live inside the mount under test (a container
    building images): markers set through the mount must read as markers to
    an inner kernel overlay (lowers) and an inner layerfs (upper too)."""
    j = lambda *p: os.path.join(root, "nest", *p)
    out = []
    for step, fn in [
        ("make l1/d opaque", lambda: (os.makedirs(j("l1", "d")),
                                      os.setxattr(j("l1", "d"), "trusted.overlay.opaque", b"y"))),
        ("l1/d/mine", lambda: create(j("l1", "d", "mine"), 0o644, b"m")),
        ("mknod 0/0 l1/a", lambda: os.mknod(j("l1", "a"), stat.S_IFCHR | 0o600, os.makedev(0, 0))),
        ("xattr whiteout l1/d2/e2", lambda: (
            os.makedirs(j("l1", "d2")),
            os.setxattr(j("l1", "d2"), "trusted.overlay.opaque", b"x"),
            create(j("l1", "d2", "e2"), 0o644),
            os.setxattr(j("l1", "d2", "e2"), "trusted.overlay.whiteout", b"y"))),
        ("l1 listing", lambda: sorted(os.listdir(j("l1")))),
        ("l1/d marker", lambda: os.getxattr(j("l1", "d"), "trusted.overlay.opaque")),
    ]:
        out.append((step, attempt(fn)))
    lowers = [j("l1"), j("l")]
    inner = os.path.join(tmp, f"inner-{label}")
    iu, iw = os.path.join(tmp, f"iu-{label}"), os.path.join(tmp, f"iw-{label}")
    for d in (inner, iu, iw):
        os.mkdir(d)
    with harness.kernel_overlay(inner, lowers, iu, iw, KERNEL_OPTS):
        out.append(("inner kernel view", attempt(lambda: untimed(harness.snapshot(inner)))))
    # an inner layerfs writing its upper through the mount under test
    with harness.layerfs(inner, [j("l")], j("u"), j("w")):
        i = lambda *p: os.path.join(inner, *p)
        for step, fn in [
            ("rm a", lambda: os.unlink(i("a"))),
            ("rmdir d", lambda: (os.unlink(i("d", "e")), os.rmdir(i("d")))),
            ("mkdir d", lambda: os.mkdir(i("d"))),
            ("mv d d2", lambda: os.rename(i("d"), i("d2"))),
            ("write new", lambda: create(i("new"), 0o644, b"n")),
            ("ls", lambda: sorted(os.listdir(inner))),
        ]:
            out.append((step, attempt(fn)))
    # (the inner's whiteout of "a" is a ".wh.a" file over a kernel overlay,
    # which shows such names, and an xattr whiteout over layerfs, which
    # does not: the views below must agree all the same)
    with harness.layerfs(inner, [j("l")], j("u"), j("w")):
        out.append(("inner layerfs remounted", untimed(harness.snapshot(inner))))
    return out


SCENARIOS = {
    "setid": scenario_setid,
    "names": scenario_names,
    "renames": scenario_renames,
    "links": scenario_links,
    "xattrs": scenario_xattrs,
}


def run_scenario(tmp, lower, name, fn, problems):
    base = os.path.join(tmp, name)
    dirs = {k: os.path.join(base, k) for k in ("ku", "kw", "lu", "lw", "km", "lm")}
    for d in dirs.values():
        os.makedirs(d)
    with harness.kernel_overlay(dirs["km"], [lower], dirs["ku"], dirs["kw"], KERNEL_OPTS):
        expected_out = fn(dirs["km"])
        expected = untimed(harness.snapshot(dirs["km"]))
    with harness.layerfs(dirs["lm"], [lower], dirs["lu"], dirs["lw"]):
        actual_out = fn(dirs["lm"])
        actual = untimed(harness.snapshot(dirs["lm"]))
    for i, (k, l) in enumerate(zip(expected_out, actual_out)):
        if k != l:
            problems.append(f"{name} #{i}: kernel {k!s:.300} layerfs {l!s:.300}")
    problems += [f"{name}: {p}" for p in harness.compare(expected, actual, "layerfs")]
    if name == "xattrs":
        k, l = stored_overlay_xattrs(dirs["ku"]), stored_overlay_xattrs(dirs["lu"])
        if k != l:
            problems.append(f"xattrs: escaped names stored differ: kernel {k} layerfs {l}")
    # each upper under the other implementation shows the same view
    for d in ("km", "lm"):
        os.rmdir(dirs[d])
        os.mkdir(dirs[d])
    with harness.kernel_overlay(dirs["km"], [lower], dirs["lu"], dirs["lw"], KERNEL_OPTS):
        problems += [f"{name} (layerfs upper under kernel): {p}" for p in
                     harness.compare(expected, untimed(harness.snapshot(dirs["km"])), "kernel view")]
    with harness.layerfs(dirs["lm"], [lower], dirs["ku"], dirs["kw"]):
        problems += [f"{name} (kernel upper under layerfs): {p}" for p in
                     harness.compare(expected, untimed(harness.snapshot(dirs["lm"])), "layerfs view")]
    print(f"{name}: {len(expected_out)} outcomes compared")


def run_nested(tmp, lower, problems):
    base = os.path.join(tmp, "nested")
    dirs = {k: os.path.join(base, k) for k in ("ku", "kw", "lu", "lw", "km", "lm")}
    for d in dirs.values():
        os.makedirs(d)
    with harness.kernel_overlay(dirs["km"], [lower], dirs["ku"], dirs["kw"], KERNEL_OPTS):
        expected = scenario_nested(dirs["km"], base, "kernel")
    with harness.layerfs(dirs["lm"], [lower], dirs["lu"], dirs["lw"]):
        actual = scenario_nested(dirs["lm"], base, "layerfs")
    for k, l in zip(expected, actual):
        if k != l:
            problems.append(f"nested {k[0]}: kernel {k[1:]!s:.400} layerfs {l[1:]!s:.400}")
    print(f"nested: {len(expected)} outcomes compared")


def run_stop_by_signal(tmp, lower, problems):
    """A mount with hard links stopped by SIGTERM exits 0 and unmounts."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        base = os.path.join(tmp, f"sig{int(sig)}")
        u, w, m = (os.path.join(base, n) for n in ("u", "w", "m"))
        for d in (u, w, m):
            os.makedirs(d)
        try:
            with harness.layerfs(m, [lower], u, w, stop_signal=sig):
                scenario_links(m)
        except harness.DaemonFailed as e:
            problems.append(f"{sig.name}: {e}")
        if harness.is_mounted(m):
            problems.append(f"{sig.name}: still mounted after the daemon exited")


def main():
    harness.start(400)
    problems = []
    with harness.temp_dir() as tmp:
        os.chmod(tmp, 0o755)  # the unprivileged caller must reach the mounts
        lower = os.path.join(tmp, "lower")
        build_lower(lower)
        with harness.lowers_unchanged([lower], problems):
            for name, fn in SCENARIOS.items():
                try:
                    run_scenario(tmp, lower, name, fn, problems)
                except harness.DaemonFailed as e:
                    problems.append(f"{name}: {e}")
            try:
                run_nested(tmp, lower, problems)
            except harness.DaemonFailed as e:
                problems.append(f"nested: {e}")
            run_stop_by_signal(tmp, lower, problems)
    harness.check(problems)


if __name__ == "__main__":
    main()
