"""layerctl diff against an independent oracle, over uppers written by real mounts.

The same user actions (rm, rm -rf then mkdir, new dirs, file<->dir, touch,
chmod, chown, open O_RDWR without writing, rewrite with the same bytes,
symlink retarget, hardlink, rename, names that are not UTF-8, ...) are
done through kernel overlayfs, fuse-overlayfs and layerfs, each leaving an
upper dir in its own format. The oracle is Docker's "naive" diff, written
here from DESIGN.md: walk the old merged view (the lowers mounted read-only)
and the new merged view (upper:lowers mounted read-only by the tool that
wrote the upper) in full and compare path by path. `layerctl diff` must
print exactly the oracle's lines, reading only the layer dirs.
"""
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

import harness

CAPS = "security.capability"
OLD_MTIME = 1_600_000_000


def entry(path):
    st = os.lstat(path)
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    try:
        caps = os.getxattr(path, CAPS, follow_symlinks=False)
    except OSError:
        caps = None
    return st, link, caps


def tree(root):
    """{b"/rel/path": (stat, link, caps, abs path)} of everything below root."""
    out = {}
    stack = [(b"", os.fsencode(root))]
    while stack:
        rel, path = stack.pop()
        for name in os.listdir(path):
            p = os.path.join(path, name)
            r = rel + b"/" + name
            st, link, caps = entry(p)
            out[r] = (st, link, caps, p)
            if stat.S_ISDIR(st.st_mode):
                stack.append((r, p))
    return out


def same_time(a_ns, b_ns):
    a_s, a_n = divmod(a_ns, 10**9)
    b_s, b_n = divmod(b_ns, 10**9)
    return a_s == b_s and (a_n == b_n or a_n == 0 or b_n == 0)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def differs(old, new, content):
    (o, olink, ocaps, opath), (n, nlink, ncaps, npath) = old, new
    if (o.st_mode, o.st_uid, o.st_gid, o.st_rdev) != (n.st_mode, n.st_uid, n.st_gid, n.st_rdev):
        return True
    is_dir = stat.S_ISDIR(n.st_mode)
    if not is_dir and o.st_size != n.st_size:
        return True
    if ocaps != ncaps or olink != nlink:
        return True
    if is_dir or same_time(o.st_mtime_ns, n.st_mtime_ns):
        return False
    if content and stat.S_ISREG(n.st_mode):
        return digest(opath) != digest(npath)
    return True


def parent(path):
    return path.rsplit(b"/", 1)[0] or b"/"


def naive_diff(old_root, new_root, content=False):
    """Docker's naive diff of two merged views, DESIGN.md rules."""
    old, new = tree(old_root), tree(new_root)
    changes = {}
    for p, n in new.items():
        if p not in old:
            changes[p] = "A"
        elif differs(old[p], n, content):
            changes[p] = "C"
    for p in old:
        if p in new:
            continue
        par = parent(p)
        if par == b"/" or (par in new and par in old and
                           stat.S_ISDIR(new[par][0].st_mode) and
                           stat.S_ISDIR(old[par][0].st_mode)):
            changes[p] = "D"
    for p in list(changes):
        q = parent(p)
        while q != b"/" and q not in changes:
            changes[q] = "C"
            q = parent(q)
    return sorted((p, k) for p, k in changes.items())


def write(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def build_lowers(top, bottom):
    """Two lowers (bottom holds most; top adds, deletes, shadows)."""
    b = os.fsencode(bottom)
    for name in ["passwd", "motd", "timezone", "touched", "chmodded", "chowned",
                 "rdwr", "samecontent", "appendme", "renameme", "old"]:
        write(os.path.join(bottom, "etc", name), f"{name} v1\n".encode())
    for rel in ["d/a", "d/b", "d/s/deep", "opt/tool/bin", "opt/tool/lib/x",
                "usr/bin/tool", "gone/x", "gone/y/z", "keep/same",
                "opt/renamedir/f", "opt/renamedir/sub/g"]:
        write(os.path.join(bottom, rel), rel.encode())
    write(os.path.join(bottom, "big"), os.urandom(1 << 20))
    write(os.path.join(b, b"caf\xe9"), b"latin-1 name")
    os.symlink("target-a", os.path.join(bottom, "link"))
    write(os.path.join(top, "etc", "l1only"), b"from the top lower\n")
    write(os.path.join(top, "d", "c"), b"c")
    write(os.path.join(top, "etc", ".wh.old"), b"")
    for root in (top, bottom):
        for dirpath, dirnames, filenames in os.walk(os.fsencode(root), topdown=False):
            for n in filenames + dirnames + [b"."]:
                os.utime(os.path.join(dirpath, n), (OLD_MTIME, OLD_MTIME),
                         follow_symlinks=False)


def user_actions(m):
    """What a container does to its rootfs; `m` is the writable mount."""
    j = lambda *p: os.path.join(m, *p)
    os.unlink(j("etc/motd"))                       # rm of a lower file
    shutil.rmtree(j("d"))                          # rm -rf, then mkdir
    os.mkdir(j("d"))
    write(j("d/new"), b"new")
    write(j("d/a"), b"d/a")                        # same name, same bytes
    write(j("d/tmp"), b"t")
    os.unlink(j("d/tmp"))
    write(j("newdir/sub/f"), b"f")                 # a new dir
    os.unlink(j("etc/timezone"))                   # file -> dir
    write(j("etc/timezone/part"), b"p")
    shutil.rmtree(j("opt/tool"))                   # dir -> file
    write(j("opt/tool"), b"now a file")
    os.utime(j("etc/touched"))                     # touch only
    os.chmod(j("etc/chmodded"), 0o600)             # chmod only
    os.chown(j("etc/chowned"), 1234, 1234)         # chown only
    os.close(os.open(j("etc/rdwr"), os.O_RDWR))    # open O_RDWR, no write
    write(j("etc/samecontent"), b"samecontent v1\n")  # same bytes, new mtime
    os.unlink(j("link"))                           # symlink retargeted
    os.symlink("target-b", j("link"))
    os.link(j("usr/bin/tool"), j("usr/bin/tool2"))  # hardlink
    write(os.path.join(os.fsencode(m), b"new-\xfe"), b"x")  # not UTF-8
    os.unlink(os.path.join(os.fsencode(m), b"caf\xe9"))
    with open(j("etc/appendme"), "ab") as f:       # grows a lower file
        f.write(b"more\n")
    os.rename(j("etc/renameme"), j("etc/renamed"))
    os.mkdir(j("etc/tmpdir"))                      # leaves only a dir mtime
    os.rmdir(j("etc/tmpdir"))
    shutil.rmtree(j("gone"))                       # one D for a subtree
    try:                                           # mv of a lower dir
        os.rename(j("opt/renamedir"), j("opt/moveddir"))  # (a redirect)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.copytree(j("opt/renamedir"), j("opt/moveddir"), symlinks=True)
        shutil.rmtree(j("opt/renamedir"))
    write(j("opt/moveddir/sub/h"), b"h")
    write(j("etc/l1only"), b"changed\n")
    with open(j("big"), "r+b") as f:               # write inside a big file
        f.seek(4096)
        f.write(b"patched")


def layerctl(*args):
    return subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=120)


def parse(out):
    rows = []
    for line in out.splitlines():
        kind, path = line.split(b" ", 1)
        rows.append((path, kind.decode()))
    return rows


def fuse_overlayfs(mnt, lowers, upper=None, work=None):
    opts = "lowerdir=" + ":".join(lowers)
    if upper:
        opts += f",upperdir={upper},workdir={work}"
    subprocess.run(["fuse-overlayfs", "-o", opts, mnt], check=True, timeout=20)
    return _unmounting(mnt)


class _unmounting:
    def __init__(self, mnt):
        self.mnt = mnt

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        harness.unmount(self.mnt)


def mounters():
    out = [("kernel overlayfs", harness.kernel_overlay)]
    if shutil.which("fuse-overlayfs"):
        out.append(("fuse-overlayfs", fuse_overlayfs))
    else:
        print("note: fuse-overlayfs not installed, its upper format not tested")
    out.append(("layerfs", harness.layerfs))
    return out


def check_one(d, name, mount):
    lowers = [os.path.join(d, "l1"), os.path.join(d, "l2")]
    upper, work, mnt = (os.path.join(d, x) for x in ("upper", "work", "mnt"))
    old, new = os.path.join(d, "old"), os.path.join(d, "new")
    for p in lowers + [upper, work, mnt, old, new]:
        os.makedirs(p, exist_ok=True)
    build_lowers(*lowers)
    problems, plain = [], []
    try:
        with mount(mnt, lowers, upper, work):
            user_actions(mnt)
            if name == "layerfs":  # the live-mount form names the same dirs
                live = layerctl("diff", mnt)
                flags = layerctl("diff", "--lower", ":".join(lowers), "--upper", upper)
                if live.returncode or live.stdout != flags.stdout:
                    problems.append(f"{name}: diff MOUNTPOINT differs: {live.stderr!r}")
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        if name == "layerfs":
            print(f"note: layerfs writable mount unavailable here ({e}); skipped")
            return []
        raise
    view = harness.kernel_overlay if name != "fuse-overlayfs" else fuse_overlayfs
    if name == "layerfs":
        view = harness.layerfs
    with view(old, lowers), view(new, [upper] + lowers):
        for content in (False, True):
            expected = naive_diff(old, new, content)
            args = ["diff", "--lower", ":".join(lowers), "--upper", upper]
            if content:
                args.append("--content")
            r = layerctl(*args)
            if r.returncode != 0:
                problems.append(f"{name}: layerctl failed: {r.stderr!r}")
                continue
            actual = parse(r.stdout)
            label = f"{name}{' --content' if content else ''}"
            for row in sorted(set(expected) - set(actual)):
                problems.append(f"{label}: missing {row[1]} {row[0]!r}")
            for row in sorted(set(actual) - set(expected)):
                problems.append(f"{label}: extra {row[1]} {row[0]!r}")
            if actual != sorted(actual):
                problems.append(f"{label}: not sorted")
            if not content:
                plain = actual
            js = json.loads(layerctl(*args, "--json").stdout)
            as_json = [(r["path"], r["kind"]) for r in js]
            as_text = [(p.decode("utf-8", "replace"), k) for p, k in actual]
            if as_json != as_text:
                problems.append(f"{label}: --json differs from the text")
            print(f"{label}: {len(expected)} changes checked")
    # Spot checks of the rules the actions were chosen for.
    must = {(b"/etc/motd", "D"), (b"/d/b", "D"), (b"/d/s", "D"), (b"/gone", "D"),
            (b"/newdir/sub/f", "A"), (b"/etc/timezone", "C"),
            (b"/etc/timezone/part", "A"), (b"/opt/tool", "C"), (b"/link", "C"),
            (b"/usr/bin/tool2", "A"), (b"/new-\xfe", "A"), (b"/caf\xe9", "D"),
            (b"/opt/renamedir", "D"), (b"/opt/moveddir/sub/g", "A"),
            (b"/opt/moveddir/sub/h", "A")}
    never = {b"/etc/rdwr", b"/usr/bin/tool", b"/d/s/deep", b"/gone/y", b"/", b"/keep"}
    got = set(plain)
    problems += [f"{name}: rule broken, {k} {p!r} missing" for p, k in must - got]
    problems += [f"{name}: rule broken, {p!r} listed" for p, _ in got if p in never]
    return problems


def main():
    harness.start(300)
    problems = []
    for name, mount in mounters():
        with harness.temp_dir() as d:
            problems += check_one(d, name, mount)
    # Bad input: one line on stderr, nothing on stdout, non-zero exit.
    with harness.temp_dir() as d:
        for args in (["diff"], ["diff", "--lower", d, "--upper", d + "/missing"],
                     ["diff", "--lower", d + "/missing", "--upper", d],
                     ["diff", d], ["diff", "--lower", d, "--upper", d, d]):
            r = layerctl(*args)
            err = r.stderr.decode().strip().splitlines()
            if r.returncode == 0 or r.stdout or len(err) != 1 or not err[0].startswith("layerctl: "):
                problems.append(f"bad input {args}: rc={r.returncode} out={r.stdout!r} err={err}")
        # An unreadable entry (run as nobody): an error, never a partial diff.
        os.chmod(d, 0o755)
        low, up = os.path.join(d, "low"), os.path.join(d, "up")
        write(os.path.join(low, "secret", "f"), b"f")
        write(os.path.join(up, "secret", "g"), b"g")
        write(os.path.join(up, "open"), b"o")
        os.chmod(os.path.join(up, "secret"), 0o700)
        for cmd in ("diff", "size"):
            r = subprocess.run([harness.LAYERCTL, cmd, "--lower", low, "--upper", up],
                               capture_output=True, timeout=60,
                               preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
            err = r.stderr.decode().strip().splitlines()
            if (r.returncode == 0 or r.stdout or len(err) != 1 or
                    "Permission denied" not in err[0] or "/secret" not in err[0]):
                problems.append(f"unreadable entry, {cmd}: rc={r.returncode} "
                                f"out={r.stdout!r} err={err}")
    harness.check(problems)


if __name__ == "__main__":
    main()
