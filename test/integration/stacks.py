"""Builders of non-trivial layer stacks for the mount tests.

build_kernel_form() writes a three-layer stack that uses the kernel's own
markers (char 0/0 whiteouts, trusted.overlay.opaque=y, xattr whiteouts in an
opaque=x dir), so that kernel overlayfs can mount it as the oracle.
build_oci_form() writes the OCI/AUFS markers (.wh.NAME, .wh..wh..opq) and the
user.* xattr forms, and returns the view expected from it.
"""
import os
import random

T0 = 1_600_000_000_123_456_789  # a fixed mtime base (ns) so trees are stable


def write(path, data=b"", mode=0o644, mtime_ns=None, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.chown(path, uid, gid)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def mkdir(path, mode=0o755, uid=0, gid=0):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def whiteout(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def set_times(root, seed):
    """Gives every entry below root a distinct, reproducible mtime (ns)."""
    rnd = random.Random(seed)
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            paths.append(os.path.join(dirpath, n))
    for p in sorted(paths, key=len, reverse=True) + [root]:
        t = T0 + rnd.randrange(10**15)
        os.utime(p, ns=(t, t), follow_symlinks=False)


def common_content(top, mid, bottom):
    rnd = random.Random(7)
    # bottom: a small rootfs
    for d in ["etc", "usr/bin", "usr/lib/x", "var/log", "srv/data", "opt/tool"]:
        mkdir(os.path.join(bottom, d))
    for i in range(40):
        write(os.path.join(bottom, f"usr/lib/x/lib{i}.so"), rnd.randbytes(rnd.randrange(0, 9000)))
    write(os.path.join(bottom, "etc/passwd"), b"root:x:0:0::/root:/bin/sh\n")
    write(os.path.join(bottom, "etc/shadow"), b"root:*:1::::::\n", mode=0o640, gid=42)
    write(os.path.join(bottom, "usr/bin/tool"), b"#!/bin/sh\necho tool\n", mode=0o4755)
    write(os.path.join(bottom, "var/log/old.log"), b"old\n" * 100, uid=1000, gid=1000)
    write(os.path.join(bottom, "srv/data/a"), b"a")
    write(os.path.join(bottom, "srv/data/b"), b"b")
    write(os.path.join(bottom, "opt/tool/bin"), b"bin")
    os.symlink("../usr/bin/tool", os.path.join(bottom, "etc/tool-link"))
    os.symlink("dangling-target", os.path.join(bottom, "etc/dangling"))
    os.mkfifo(os.path.join(bottom, "srv/fifo"))
    os.mknod(os.path.join(bottom, "srv/null"), 0o666 | 0o020000, os.makedev(1, 3))
    os.link(os.path.join(bottom, "srv/data/a"), os.path.join(bottom, "srv/data/a-hardlink"))
    os.link(os.path.join(bottom, "usr/bin/tool"), os.path.join(bottom, "usr/bin/tool-hardlink"))
    with open(os.path.join(bottom, "srv/sparse"), "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
    os.setxattr(os.path.join(bottom, "etc/passwd"), "user.origin", b"bottom")
    os.setxattr(os.path.join(bottom, "usr/lib/x"), "user.dir", b"bottom-dir")
    os.setxattr(os.path.join(bottom, "etc/tool-link"), "trusted.note", b"link")
    # mid: overrides, new files
    write(os.path.join(mid, "etc/passwd"), b"root:x:0:0::/root:/bin/bash\napp:x:1:1::/:/bin/false\n")
    os.setxattr(os.path.join(mid, "etc/passwd"), "user.origin", b"mid")
    for i in range(0, 40, 3):
        write(os.path.join(mid, f"usr/lib/x/lib{i}.so"), rnd.randbytes(100))
    write(os.path.join(mid, "usr/lib/x/new-in-mid"), b"mid")
    write(os.path.join(mid, "var/log/mid.log"), b"mid\n", mode=0o600)
    mkdir(os.path.join(mid, "srv"), mode=0o750)  # mode differs from bottom's
    # top: app
    write(os.path.join(top, "app/main.py"), b"print('hi')\n", mode=0o755)
    write(os.path.join(top, "usr/lib/x/lib5.so"), b"top")
    mkdir(os.path.join(top, "home/user"), mode=0o700, uid=1000, gid=1000)
    write(os.path.join(top, "home/user/.profile"), b"x", uid=1000, gid=1000)


def build_kernel_form(base, xattr_whiteouts=True):
    """Three layers (topmost first) with kernel-native markers.

    Without xattr_whiteouts the opaque=x dir is left out: kernel overlayfs
    refuses rmdir (ENOTEMPTY) of a dir whose lower layer holds an xattr
    whiteout even when the dir shows empty, a quirk layerfs does not copy.
    """
    top, mid, bottom = (os.path.join(base, n) for n in ("top", "mid", "bottom"))
    for d in (top, mid, bottom):
        mkdir(d)
    common_content(top, mid, bottom)
    whiteout(os.path.join(mid, "etc/shadow"))           # file deleted in mid
    whiteout(os.path.join(mid, "opt"))                  # whole dir deleted in mid
    whiteout(os.path.join(top, "usr/lib/x/lib3.so"))    # deleted again in top
    mkdir(os.path.join(mid, "srv/data"))                # replaced dir: opaque
    os.setxattr(os.path.join(mid, "srv/data"), "trusted.overlay.opaque", b"y")
    write(os.path.join(mid, "srv/data/fresh"), b"fresh")
    write(os.path.join(top, "opt"), b"opt is a file now")  # file over a deleted dir
    # kernel 6.7+ xattr whiteouts: only inside a dir marked opaque=x
    mkdir(os.path.join(top, "var/log"))
    if xattr_whiteouts:
        os.setxattr(os.path.join(top, "var/log"), "trusted.overlay.opaque", b"x")
        write(os.path.join(top, "var/log/old.log"), b"")
        os.setxattr(os.path.join(top, "var/log/old.log"), "trusted.overlay.whiteout", b"")
    write(os.path.join(top, "var/log/new.log"), b"new")
    # (An empty file with the whiteout xattr outside an x dir is left out:
    # the kernel hides it on lookup yet lists it in readdir once any dir of
    # its layer is marked x. The unit tests cover our rule for it.)
    for i, d in enumerate((top, mid, bottom)):
        set_times(d, i)
    return [top, mid, bottom]


def build_oci_form(base):
    """Three layers (topmost first) with OCI/AUFS and user-xattr markers.

    Returns (layers, hidden, shown): paths that must not be visible and paths
    that must be, in the merged view.
    """
    top, mid, bottom = (os.path.join(base, n) for n in ("top", "mid", "bottom"))
    for d in (top, mid, bottom):
        mkdir(d)
    common_content(top, mid, bottom)
    write(os.path.join(mid, "etc/.wh.shadow"))           # file deleted in mid
    write(os.path.join(mid, ".wh.opt"))                  # dir deleted in mid
    write(os.path.join(top, "usr/lib/x/.wh.lib3.so"))    # deleted in top
    write(os.path.join(mid, "srv/data/.wh..wh..opq"))    # replaced dir
    write(os.path.join(mid, "srv/data/fresh"), b"fresh")
    mkdir(os.path.join(top, "var/log"))                  # user.overlay opaque
    os.setxattr(os.path.join(top, "var/log"), "user.overlay.opaque", b"y")
    write(os.path.join(top, "var/log/new.log"), b"new")
    mkdir(os.path.join(top, "usr/bin"))                  # fuse-overlayfs opaque
    os.setxattr(os.path.join(top, "usr/bin"), "user.fuseoverlayfs.opaque", b"y")
    write(os.path.join(top, "usr/bin/only"), b"only")
    write(os.path.join(bottom, ".wh.never-shown"))       # bottom whiteout: hidden
    for i, d in enumerate((top, mid, bottom)):
        set_times(d, i)
    hidden = ["etc/shadow", "opt", "opt/tool/bin", "usr/lib/x/lib3.so", "srv/data/a",
              "srv/data/b", "var/log/old.log", "var/log/mid.log", "usr/bin/tool",
              ".wh.never-shown", "never-shown", "etc/.wh.shadow", "srv/data/.wh..wh..opq"]
    shown = ["etc/passwd", "srv/data/fresh", "var/log/new.log", "usr/bin/only",
             "usr/lib/x/lib4.so", "usr/lib/x/new-in-mid", "srv/fifo", "srv/null"]
    return [top, mid, bottom], hidden, shown


def convert_to_kernel_form(src_layers, dst_base):
    """Copies OCI-form layers into kernel form (the oracle's input)."""
    import shutil
    import subprocess
    out = []
    os.makedirs(dst_base, exist_ok=True)
    for i, src in enumerate(src_layers):
        dst = os.path.join(dst_base, f"k{i}")
        subprocess.run(["cp", "-a", src, dst], check=True)
        for dirpath, dirnames, filenames in os.walk(dst):
            for name in filenames:
                p = os.path.join(dirpath, name)
                if name == ".wh..wh..opq":
                    os.unlink(p)
                    os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
                elif name.startswith(".wh."):
                    os.unlink(p)
                    target = os.path.join(dirpath, name[4:])
                    if os.path.lexists(target):
                        shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
                    whiteout(target)
            for d in [dirpath]:
                for attr in ("user.overlay.opaque", "user.fuseoverlayfs.opaque"):
                    try:
                        v = os.getxattr(d, attr)
                        os.removexattr(d, attr)
                        os.setxattr(d, "trusted.overlay.opaque", v)
                    except OSError:
                        pass
        set_times_from(src, dst)
        out.append(dst)
    return out


def set_times_from(src, dst):
    """Gives every entry of dst the mtime of the same path in src."""
    for dirpath, dirnames, filenames in os.walk(dst, topdown=False):
        for n in dirnames + filenames + [None]:
            p = os.path.join(dirpath, n) if n else dirpath
            s = os.path.join(src, os.path.relpath(p, dst))
            if os.path.lexists(s):
                st = os.lstat(s)
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
