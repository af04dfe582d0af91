"""A seeded random sequence of filesystem operations, applied to two mounts.

Ops are generated from one RNG and the path list of the reference mount, so
the same sequence runs on both; every outcome (value or errno) is recorded
for comparison. Times are made deterministic after each op that sets them
to "now", so final trees compare exactly, mtimes included.
"""
import ctypes
import errno
import os
import random
import stat

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
T_BASE = 1_700_000_000_000_000_000


def renameat2(old, new, flags):
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# Real rootfs names: NAME_MAX long ones (a digit appended makes them one
# too long), UTF-8 and bytes that are not UTF-8 at all.
NAMES = ["a", "b", "c", "dir", "sub", "x.txt", "lib1.so", "new", "z", "L" * 254,
         "gr\u00fc\u00dfe", os.fsdecode(b"lat\xe9n")]
OPS = ["create", "write", "append", "truncate", "chmod", "chown", "utime", "mkdir",
       "rmdir", "unlink", "rename", "rename_noreplace", "rename_exchange", "symlink",
       "link", "mkfifo", "setxattr", "removexattr", "open_trunc", "fallocate", "read",
       "rm_tree", "readdir", "readlink", "stat", "replace_dir", "listxattr"]
WEIGHTS = [9, 8, 5, 4, 4, 3, 3, 7, 3, 4, 8, 2, 2, 3, 3, 1, 3, 2, 3, 2, 4, 1, 3, 1, 3, 3, 2]
# user.* data, and overlay's own names, which the mount stores escaped
XATTRS = ["user.k0", "user.k1", "user.k2", "trusted.overlay.opaque",
          "trusted.overlay.redirect", "trusted.overlay.overlay.x"]


class Known(list):
    """The reference tree's paths (sorted), and which of them are dirs."""
    dirs = ()


def walk_paths(root):
    out, dirs = Known(), ["."]
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
        dirs += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames]
    out.sort()
    out.dirs = sorted(dirs)
    return out


MODES = [0o644, 0o600, 0o755, 0o4755, 0o2750, 0o6711, 0o1777, 0o000]
# Modes that leave the owner every access: for a daemon that runs as that
# owner without root, which must look into any directory it merges.
OWNER_MODES = [0o755, 0o700, 0o4755, 0o2750, 0o6711, 0o1777, 0o744, 0o4700]


class Generator:
    def __init__(self, seed, modes=MODES):
        self.rng = random.Random(seed)
        self.modes = modes

    def path(self, known, existing_bias=0.8):
        r = self.rng
        if known and r.random() < existing_bias:
            return r.choice(known)
        base = r.choice(["."] + [p for p in known if "/" not in p][:40])
        name = r.choice(NAMES) + (str(r.randrange(5)) if r.random() < 0.5 else "")
        return os.path.normpath(os.path.join(base, name))

    def new_path(self, known):
        r = self.rng
        base = r.choice(known.dirs or ["."])
        return os.path.normpath(os.path.join(base, r.choice(NAMES) + str(r.randrange(9))))

    def op(self, known):
        r = self.rng
        kind = r.choices(OPS, WEIGHTS)[0]
        creates = ("create", "mkdir", "symlink", "mkfifo")
        a = self.new_path(known) if kind in creates and r.random() < 0.7 else self.path(known)
        if kind == "rm_tree" and a.count("/") < 2:
            kind = "unlink"  # keep the tree from being wiped out wholesale
        b = self.new_path(known) if kind in ("link", "rename") and r.random() < 0.5 \
            else self.path(known, 0.6)
        data = r.randbytes(r.choice([0, 1, 100, 5000, 70000]))
        num = r.randrange(1 << 20)
        mode = r.choice(self.modes)
        return (kind, a, b, data, num, mode)


def touch_times(root, rel, step):
    """Deterministic atime/mtime for rel (not following symlinks)."""
    t = T_BASE + step * 1_000_003
    try:
        os.utime(os.path.join(root, rel), ns=(t, t), follow_symlinks=False)
    except OSError:
        pass


def apply(root, op, step):
    """Runs one op under root; returns its outcome and the paths it touched."""
    kind, a, b, data, num, mode = op
    pa, pb = os.path.join(root, a), os.path.join(root, b)
    parent_a, parent_b = os.path.dirname(a) or ".", os.path.dirname(b) or "."
    touched = []
    opens = ("write", "append", "open_trunc", "fallocate", "read", "truncate")
    try:
        if kind in opens and stat.S_ISFIFO(os.lstat(pa).st_mode):
            return ("skip", "fifo")  # opening it would block on both sides
        if kind == "create":  # set-id and sticky modes too, as package managers do
            fd = os.open(pa, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                         mode if num % 3 == 0 else 0o640)
            os.write(fd, data)
            os.close(fd)
            touched = [a, parent_a]
            result = None
        elif kind in ("write", "append"):
            flags = os.O_WRONLY | os.O_NOFOLLOW | (os.O_APPEND if kind == "append" else 0)
            fd = os.open(pa, flags)
            try:
                result = os.pwrite(fd, data, num % 20000) if kind == "write" else os.write(fd, data)
            finally:
                os.close(fd)
            touched = [a]
        elif kind == "truncate":
            os.truncate(pa, num % 100000)
            # It follows a symlink: the file it reaches changed its times too
            # ("now" on each side, equal only within one clock tick).
            target = os.path.relpath(os.path.realpath(pa), os.path.realpath(root))
            touched = [a] + ([target] if not target.startswith("..") and target != a else [])
            result = None
        elif kind == "open_trunc":
            fd = os.open(pa, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            os.close(fd)
            touched = [a]
            result = None
        elif kind == "chmod":
            os.chmod(pa, mode, follow_symlinks=False) if not os.path.islink(pa) else None
            result = None
        elif kind == "chown":
            os.chown(pa, num % 3 * 1000, num % 5 * 100, follow_symlinks=False)
            result = None
        elif kind == "utime":
            t = T_BASE - num * 977
            os.utime(pa, ns=(t + 5, t), follow_symlinks=False)
            result = None
        elif kind == "mkdir":
            os.mkdir(pa, mode | 0o700 if num % 3 == 0 else 0o755)
            touched = [a, parent_a]
            result = None
        elif kind == "rmdir":
            os.rmdir(pa)
            touched = [parent_a]
            result = None
        elif kind == "unlink":
            os.unlink(pa)
            touched = [parent_a]
            result = None
        elif kind == "rm_tree":
            result = rm_tree(root, a, touched)
        elif kind.startswith("rename"):
            flags = {"rename": 0, "rename_noreplace": RENAME_NOREPLACE,
                     "rename_exchange": RENAME_EXCHANGE}[kind]
            renameat2(pa, pb, flags)
            touched = [parent_a, parent_b]
            result = None
        elif kind == "symlink":
            os.symlink(b, pa)
            touched = [a, parent_a]
            result = None
        elif kind == "link":
            os.link(pa, pb, follow_symlinks=False)
            touched = [parent_b]
            result = None
        elif kind == "mkfifo":
            os.mkfifo(pa, mode if num % 2 else 0o644)
            touched = [a, parent_a]
            result = None
        elif kind == "setxattr":
            os.setxattr(pa, XATTRS[num % len(XATTRS)], data[:200], follow_symlinks=False)
            result = None
        elif kind == "removexattr":
            os.removexattr(pa, XATTRS[num % len(XATTRS)], follow_symlinks=False)
            result = None
        elif kind == "fallocate":
            fd = os.open(pa, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.posix_fallocate(fd, num % 50000, 4096)
            finally:
                os.close(fd)
            touched = [a]
            result = None
        elif kind == "read":
            fd = os.open(pa, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                result = os.pread(fd, 4096, num % 8192)
            finally:
                os.close(fd)
        elif kind == "replace_dir":
            # remove a (lower) name, then rename a new directory onto its
            # whiteout: the result is opaque where a lower dir was
            rm_tree(root, a, touched)
            tmp_dir = pa + ".new"
            os.mkdir(tmp_dir)
            touched += [a + ".new"]
            os.mknod(os.path.join(tmp_dir, "inside"), 0o644 | stat.S_IFREG)
            touched += [a + ".new/inside"]
            os.rename(tmp_dir, pa)
            touched += [a, os.path.join(a, "inside")]
            result = sorted(os.listdir(pa))
        elif kind == "listxattr":
            result = sorted(os.listxattr(pa, follow_symlinks=False))
        elif kind == "readdir":
            result = sorted(os.listdir(pa))
        elif kind == "readlink":
            result = os.readlink(pa)
        elif kind == "stat":
            st = os.lstat(pa)
            result = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                      st.st_size if not stat.S_ISDIR(st.st_mode) else 0)
        else:
            raise AssertionError(kind)
        outcome = ("ok", result)
    except OSError as e:
        outcome = ("err", errno.errorcode.get(e.errno, e.errno))
    for rel in touched:
        touch_times(root, rel, step)
    return outcome


def rm_tree(root, rel, touched):
    """rm -rf that reports the first error, like a shell would see it; every
    directory it changed, even on the way to a failure, goes into touched."""
    path = os.path.join(root, rel)
    if os.path.isdir(path) and not os.path.islink(path):
        for n in sorted(os.listdir(path)):
            rm_tree(root, os.path.join(rel, n), touched)
        os.rmdir(path)
    else:
        os.unlink(path)
    touched.append(os.path.dirname(rel) or ".")
    return None


def run_both(kernel_root, layerfs_root, seed, ops, label, modes=MODES):
    """The same `ops` seeded operations on both roots; returns the number of
    outcome mismatches and the first few as problems."""
    gen = Generator(seed, modes)
    mismatches, problems = 0, []
    known = walk_paths(kernel_root)
    for step in range(ops):
        op = gen.op(known)
        k = apply(kernel_root, op, step)
        l = apply(layerfs_root, op, step)
        if k != l:
            mismatches += 1
            if mismatches <= 8:
                problems.append(f"{label} step {step} {op[:3]}: kernel {k[:2]!s:.120} "
                                f"layerfs {l[:2]!s:.120}")
        if step % 25 == 0 or op[0] in ("mkdir", "rename", "rm_tree", "rmdir"):
            known = walk_paths(kernel_root)
    return mismatches, problems
