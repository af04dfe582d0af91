"""-o metacopy=on: a lower file's metadata copied up alone, as kernel
overlayfs (metacopy=on) does it, and each implementation reads the other's
upper.

  both ways    the same changes on layerfs (metacopy=on) and on kernel
               overlayfs (metacopy=on, redirect_dir=on), each over the same
               two lowers with its own upper. chmod, chown, utimes, setxattr
               and removexattr leave upper files of the lower's size with no
               data blocks, trusted.overlay.metacopy="" and the new metadata,
               in both uppers alike; the mounts read the lower's data and
               report its st_blocks. An append, a truncate, an O_RDWR and
               an O_TRUNC open copy the data (the marker goes, an fd opened
               before reads the new data); a rename and a link copy it in
               layerfs, while the kernel writes redirects (relative and
               absolute), which this test requires of it; a renamed merged
               dir keeps the metacopy file in it. The views agree after each
               step, st_blocks included. Then each upper is mounted by the
               other: kernel overlayfs over layerfs's upper, layerfs (with
               metacopy=on and without) over the kernel's; writes through
               layerfs to the kernel's redirected metacopy files copy the
               data the redirects name, and the kernel shows the result.
  stacked      each upper as the top lower layer: read-only layerfs (with
               metacopy=on and without) shows what kernel overlayfs
               (metacopy=on) shows, writable mounts over it agree, and the
               tools take the data of a new upper's metacopy file from the
               layer below the metacopy one.
  tools        on both uppers: layerctl diff lists the metacopy files,
               size counts them 0 bytes, commit writes the lower's data.
  differential seeded operations on kernel overlayfs and layerfs (both
               metacopy=on) over copies of one stack, in rounds: every
               outcome; after each round the trees, st_blocks of the files
               metacopy in both uppers, and no metacopy file in layerfs's
               upper where the kernel copied the data; at the end each
               upper under the other.
  refused      metacopy=bogus, metacopy=on with userxattr and metacopy=on in
               a daemon that cannot write trusted.* fail with one line, mount
               nothing and leave the upper as it was.
  default      metacopy=off, and no option at all, copy the data at once.

Runs in a private mount namespace. Skips without root, /dev/fuse or a
kernel overlayfs that takes metacopy=on.

  test_metacopy.py [--seed 23] [--ops 3000]
"""
import argparse
import json
import os
import random
import stat
import subprocess
import tarfile

import differential
import harness
import stacks
from test_size_overlay import tree_size

MiB = 1 << 20
NOBODY = 65534
METACOPY = "trusted.overlay.metacopy"
REDIRECT = "trusted.overlay.redirect"
KERNEL_METACOPY = ["metacopy=on", "redirect_dir=on", "index=off"]
LAYERFS_METACOPY = ["metacopy=on"]
T1 = 1_650_000_000_987_654_321
# at most an xattr block: what "no data blocks" may still cost on ext4
MAX_METACOPY_BLOCKS = 8

# every lower file change_metadata() touches, and the changes after it
METACOPIED = {"big", "page", "rdwr", "sparse", "sparse2", "xattr", "empty", "bin/suid",
              "lib/blob", "dir/sub/deep", "dir/top", "hard/a", "shadow"}
DATA_COPIED = {"big", "page", "rdwr", "dir/top"}
RENAMES = {"xattr": "dir/xattr.moved", "lib/blob": "lib/blob.renamed"}
LINKS = {"sparse": "sparse.link"}
# a merged directory holding a metacopy file, renamed: no file redirect
DIR_RENAMES = {"dir/sub": "moved-sub"}
ROUND = 250  # differential ops between two looks at the uppers


# --- the stack and the changes ------------------------------------------------

def sparse_file(path, size, pieces):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)


def build_lowers(base):
    """Two layers (topmost first) holding the files the changes hit."""
    top, bottom = os.path.join(base, "top"), os.path.join(base, "bottom")
    rnd = random.Random(5)

    def put(layer, rel, data, mode=0o644):
        stacks.write(os.path.join(layer, rel), data, mode)
    put(bottom, "empty", b"")
    put(bottom, "page", rnd.randbytes(4096))
    put(bottom, "rdwr", rnd.randbytes(6000))
    put(bottom, "big", rnd.randbytes(3 * MiB))
    put(bottom, "lib/blob", rnd.randbytes(MiB))
    put(bottom, "bin/suid", b"\x7fELF" + rnd.randbytes(20000), 0o4755)
    put(bottom, "xattr", b"tagged\n")
    os.setxattr(os.path.join(bottom, "xattr"), "user.tag", b"lower")
    put(bottom, "dir/sub/deep", rnd.randbytes(10000))
    put(top, "dir/top", rnd.randbytes(5000))
    put(bottom, "shadow", b"the bottom's, hidden\n")
    put(top, "shadow", b"the top's, shown\n")
    put(bottom, "hard/a", rnd.randbytes(8192))
    os.link(os.path.join(bottom, "hard/a"), os.path.join(bottom, "hard/b"))
    put(bottom, "untouched", rnd.randbytes(3 * MiB))
    sparse_file(os.path.join(bottom, "sparse"), 64 * MiB,
                [(0, b"head"), (20 * MiB, rnd.randbytes(70000)), (64 * MiB - 3, b"end")])
    sparse_file(os.path.join(bottom, "sparse2"), 16 * MiB, [(8 * MiB, b"middle")])
    for i, layer in enumerate((top, bottom)):
        stacks.set_times(layer, i)
    return [top, bottom]


def change_metadata(m):
    """Metadata-only changes to lower files (the METACOPIED ones)."""
    j = lambda rel: os.path.join(m, rel)
    os.chmod(j("big"), 0o600)
    os.utime(j("page"), ns=(T1, T1))
    os.chmod(j("rdwr"), 0o664)
    os.chown(j("sparse"), 1000, 1000)
    os.chmod(j("sparse2"), 0o444)
    os.removexattr(j("xattr"), "user.tag")
    os.setxattr(j("empty"), "user.new", b"1")
    os.chown(j("bin/suid"), 1, 1)  # clears the set-id bit, as chown does
    os.utime(j("lib/blob"), ns=(T1, T1 + 1))
    os.chmod(j("dir/sub/deep"), 0o640)
    os.utime(j("dir/top"), ns=(T1, T1 + 2))
    os.chmod(j("hard/a"), 0o700)
    os.setxattr(j("shadow"), "user.s", b"v")


def change_data(m):
    """Copies the data of DATA_COPIED; returns what an fd opened read-only
    before the append reads at the old end afterwards."""
    j = lambda rel: os.path.join(m, rel)
    old_end = os.lstat(j("big")).st_size - 1
    reader = os.open(j("big"), os.O_RDONLY)
    try:
        with open(j("big"), "ab") as f:
            f.write(b"!")
        seen = os.pread(reader, 2, old_end)
    finally:
        os.close(reader)
    os.truncate(j("page"), 1000)
    os.close(os.open(j("rdwr"), os.O_RDWR))  # opened for write, nothing written
    os.close(os.open(j("dir/top"), os.O_WRONLY | os.O_TRUNC))
    with open(j("sparse2"), "rb") as f:  # a read copies nothing
        f.seek(8 * MiB)
        f.read(100)
    return seen


def settle_times(m, step):
    """Fixed times for what a step left at "now" and differently in the two
    mounts: every directory (new upper dirs and entries) and the files
    whose data was written."""
    t = T1 + step * 1_000_003
    dirs = [os.path.relpath(d, m) for d, _, _ in os.walk(m)]
    for rel in dirs + sorted(r for r in DATA_COPIED if os.path.lexists(os.path.join(m, r))):
        os.utime(os.path.join(m, rel), ns=(t, t))


def change_names(m):
    j = lambda rel: os.path.join(m, rel)
    for old, new in RENAMES.items():
        os.rename(j(old), j(new))
    for old, new in LINKS.items():
        os.link(j(old), j(new))
    for old, new in DIR_RENAMES.items():
        os.rename(j(old), j(new))


def renamed(rel):
    """Where rel is after change_names()."""
    rel = RENAMES.get(rel, rel)
    for old, new in DIR_RENAMES.items():
        if rel.startswith(old + "/"):
            rel = new + rel[len(old):]
    return rel


# --- reading uppers and views -----------------------------------------------------

def markers(upper):
    """{rel: (has metacopy, redirect or None)} of the upper's regular files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            names = os.listxattr(p, follow_symlinks=False)
            redirect = os.getxattr(p, REDIRECT) if REDIRECT in names else None
            out[os.path.relpath(p, upper)] = (METACOPY in names, redirect)
    return out


def metacopy_files(upper):
    return {rel for rel, (meta, _) in markers(upper).items() if meta}


def lower_path(lowers, rel):
    """The topmost layer's entry at rel, or None."""
    for layer in lowers:
        p = os.path.join(layer, rel)
        if os.path.lexists(p):
            return p
    return None


def lower_data(upper, rel, lowers):
    """The lower file that holds the data of the metacopy file upper/rel:
    its own and its directories' redirects followed, as the kernel does,
    and metacopy files in the lowers passed over (their redirects are not
    followed: the stacks here have none below the top)."""
    parts, below = rel.split("/"), ""
    for i, part in enumerate(parts):
        below = os.path.join(below, part)
        try:
            redirect = os.fsdecode(os.getxattr(os.path.join(upper, *parts[:i + 1]), REDIRECT,
                                               follow_symlinks=False))
        except OSError:
            continue
        below = redirect[1:] if redirect.startswith("/") else \
            os.path.join(os.path.dirname(below), redirect)
    for layer in lowers:
        p = os.path.join(layer, below)
        if os.path.lexists(p) and METACOPY not in os.listxattr(p, follow_symlinks=False):
            return p
    return None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def block_counts(root):
    """{rel: st_blocks} of every non-directory below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p).st_blocks
    return out


def compare_blocks(expected, actual, what):
    return [f"st_blocks differ in {what}: {p}: {expected.get(p)} vs {actual.get(p)}"
            for p in sorted(set(expected) | set(actual)) if expected.get(p) != actual.get(p)]


def disk_use(path):
    os.sync()
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def exact_tree(root):
    """Names, types, sizes, mtimes and every xattr (trusted.overlay.* too)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for p in [dirpath] + [os.path.join(dirpath, n) for n in sorted(dirnames + filenames)]:
            st = os.lstat(p)
            xattrs = sorted((n, os.getxattr(p, n, follow_symlinks=False))
                            for n in os.listxattr(p, follow_symlinks=False))
            out.append((os.path.relpath(p, root), st.st_mode, st.st_size, st.st_mtime_ns, xattrs))
    return sorted(out)


def views_agree(label, kmnt, lmnt, problems):
    """Compares the two views, st_blocks too; returns the kernel's."""
    expected, blocks = harness.snapshot(kmnt), block_counts(kmnt)
    problems += [f"{label}: {p}"
                 for p in harness.compare(expected, harness.snapshot(lmnt), "layerfs")]
    problems += [f"{label}: {p}" for p in compare_blocks(blocks, block_counts(lmnt), "layerfs")]
    return expected


# --- both ways --------------------------------------------------------------------

def check_metacopy_upper(label, upper, mnt, lowers, want, problems):
    """The upper holds exactly `want` as metacopy files, each as promised."""
    have = metacopy_files(upper)
    if have != want:
        problems.append(f"{label}: metacopy files {sorted(have)}, expected {sorted(want)}")
    for rel in sorted(have & want):
        up, shown = os.path.join(upper, rel), os.path.join(mnt, rel)
        st, view = os.lstat(up), os.lstat(shown)
        data = lower_data(upper, rel, lowers)
        low = os.lstat(data)
        value = os.getxattr(up, METACOPY)
        if value != b"":
            problems.append(f"{label}: {rel}: {METACOPY} is {value!r}, not empty")
        if st.st_size != low.st_size:
            problems.append(f"{label}: {rel}: upper size {st.st_size}, lower {low.st_size}")
        if st.st_blocks > MAX_METACOPY_BLOCKS:
            problems.append(f"{label}: {rel}: upper has {st.st_blocks} blocks of 512 B "
                            f"for {st.st_size} B: data was copied")
        for field in ("st_mode", "st_uid", "st_gid", "st_mtime_ns"):
            if getattr(st, field) != getattr(view, field):
                problems.append(f"{label}: {rel}: upper {field} {getattr(st, field)}, "
                                f"mount shows {getattr(view, field)}")
        if view.st_blocks != low.st_blocks:
            problems.append(f"{label}: {rel}: mount shows st_blocks {view.st_blocks}, "
                            f"the lower data file has {low.st_blocks}")
        if harness.file_digest(shown) != harness.file_digest(data):
            problems.append(f"{label}: {rel}: mount does not read the lower's data")
        if METACOPY in os.listxattr(shown, follow_symlinks=False):
            problems.append(f"{label}: {rel}: the mount lists {METACOPY}")


def check_data_copied(label, upper, mnt, rels, problems):
    """Each rel is a plain upper file holding what the mount shows."""
    marks = markers(upper)
    for rel in sorted(rels):
        if rel not in marks:
            problems.append(f"{label}: {rel} is not a regular file in the upper")
            continue
        if marks[rel][0]:
            problems.append(f"{label}: {rel} still has {METACOPY} after its data was copied")
        if harness.file_digest(os.path.join(upper, rel)) != \
                harness.file_digest(os.path.join(mnt, rel)):
            problems.append(f"{label}: {rel}: the upper does not hold the data the mount shows")


def check_kernel_redirects(upper, problems):
    """The kernel's rename and link of metacopy files left redirects: the
    form layerfs must read, so their absence fails the test."""
    want = {"dir/xattr.moved": b"/xattr", "lib/blob.renamed": b"blob", "sparse.link": b"/sparse"}
    marks = markers(upper)
    for rel, redirect in want.items():
        if marks.get(rel) != (True, redirect):
            problems.append(f"kernel: {rel} has (metacopy, redirect) {marks.get(rel)}, expected "
                            f"(True, {redirect!r}): no kernel-written redirect to read")
    if not os.path.samefile(os.path.join(upper, "sparse"), os.path.join(upper, "sparse.link")):
        problems.append("kernel: the linked metacopy file is two inodes in its upper")
    try:
        moved = os.getxattr(os.path.join(upper, "moved-sub"), REDIRECT)
    except OSError:
        moved = None
    if moved != b"/dir/sub" or "moved-sub/deep" not in metacopy_files(upper):
        problems.append(f"kernel: moved-sub has redirect {moved!r}, and deep in it is "
                        f"{'' if 'moved-sub/deep' in metacopy_files(upper) else 'not '}metacopy")


def both_ways(tmp, lowers, problems):
    ku, kw, km, lu, lw, lm = harness.make_dirs(
        os.path.join(tmp, "both"), "ku", "kw", "km", "lu", "lw", "lm")
    with harness.lowers_unchanged(lowers, problems):
        with harness.kernel_overlay(km, lowers, ku, kw, KERNEL_METACOPY), \
                harness.layerfs(lm, lowers, lu, lw, LAYERFS_METACOPY):
            for m in (km, lm):
                change_metadata(m)
                settle_times(m, 1)
            views_agree("metadata changed", km, lm, problems)
            check_metacopy_upper("kernel", ku, km, lowers, METACOPIED, problems)
            check_metacopy_upper("layerfs", lu, lm, lowers, METACOPIED, problems)
            used = disk_use(lu)
            print(f"metadata changed: layerfs upper uses {used} B on disk "
                  f"for {len(METACOPIED)} metacopy files, kernel's {disk_use(ku)} B")
            if used >= MiB:
                problems.append(f"layerfs: upper uses {used} B on disk after metadata changes")

            seen = {label: change_data(m) for label, m in (("kernel", km), ("layerfs", lm))}
            for m in (km, lm):
                settle_times(m, 2)
            want_seen = read(os.path.join(lowers[1], "big"))[-1:] + b"!"
            for label, got in seen.items():
                if got != want_seen:
                    problems.append(f"{label}: an fd opened read-only before the data copy-up "
                                    f"reads {got!r} at the old end, expected {want_seen!r}")
            views_agree("data copied", km, lm, problems)
            for label, upper, m in (("kernel", ku, km), ("layerfs", lu, lm)):
                check_metacopy_upper(label, upper, m, lowers, METACOPIED - DATA_COPIED, problems)
                check_data_copied(label, upper, m, DATA_COPIED, problems)

            for m in (km, lm):
                change_names(m)
                settle_times(m, 3)
            expected = views_agree("renamed and linked", km, lm, problems)
            moved = set(RENAMES.values()) | set(LINKS) | set(LINKS.values())
            still = {renamed(r) for r in METACOPIED - DATA_COPIED - set(RENAMES) - set(LINKS)}
            check_metacopy_upper("layerfs", lu, lm, lowers, still, problems)
            check_data_copied("layerfs", lu, lm, moved, problems)
            problems += [f"layerfs: {rel} has {REDIRECT}" for rel, (_, r) in markers(lu).items()
                         if r is not None]
            if not os.path.samefile(os.path.join(lu, "sparse"), os.path.join(lu, "sparse.link")):
                problems.append("layerfs: the linked file is two inodes in its upper")
            check_kernel_redirects(ku, problems)
            kernel_blocks, layerfs_blocks = block_counts(km), block_counts(lm)
        print(f"both ways: {len(expected)} entries; kernel upper {sorted(metacopy_files(ku))} "
              f"metacopy; layerfs upper {sorted(metacopy_files(lu))}")

        km2, kw2, lm2, lw2, lw3 = harness.make_dirs(
            os.path.join(tmp, "crossed"), "km", "kw", "lm", "lw", "lw2")
        with harness.kernel_overlay(km2, lowers, lu, kw2, KERNEL_METACOPY):
            problems += harness.compare(expected, harness.snapshot(km2),
                                        "kernel view of layerfs upper")
            problems += compare_blocks(layerfs_blocks, block_counts(km2),
                                       "kernel view of layerfs upper")
        for label, extra, work in (("metacopy=on", LAYERFS_METACOPY, lw2), ("default", [], lw3)):
            what = f"layerfs ({label}) view of kernel upper"
            with harness.layerfs(lm2, lowers, ku, work, extra):
                problems += harness.compare(expected, harness.snapshot(lm2), what)
                problems += compare_blocks(kernel_blocks, block_counts(lm2), what)
        check_tools(tmp, "layerfs upper", lu, lowers, problems)
        check_tools(tmp, "kernel upper", ku, lowers, problems)
        for label, upper in (("layerfs upper", lu), ("kernel upper", ku)):
            stacked(tmp, label, [upper] + lowers, problems)
        write_kernel_metacopy(tmp, lowers, ku, problems)


def stacked(tmp, label, layers, problems):
    """An upper holding metacopy files, now the top lower layer (as a
    committed container layer is): read-only mounts show the data below
    it, and writable ones copy such a file up as the kernel does."""
    base = os.path.join(tmp, "stacked-" + label.replace(" ", "-"))
    km, lm, lm2, ku, kw, lu, lw = harness.make_dirs(base, "km", "lm", "lm2", "ku", "kw", "lu", "lw")
    with harness.kernel_overlay(km, layers, extra=["metacopy=on"]):
        expected, blocks = harness.snapshot(km), block_counts(km)
    for option, extra in (("default", []), ("metacopy=on", LAYERFS_METACOPY)):
        what = f"layerfs ({option}, read-only) over the {label} as a lower"
        with harness.layerfs(lm, layers, extra=extra):
            problems += harness.compare(expected, harness.snapshot(lm), what)
            problems += compare_blocks(blocks, block_counts(lm), what)
    with harness.kernel_overlay(km, layers, ku, kw, KERNEL_METACOPY), \
            harness.layerfs(lm2, layers, lu, lw, LAYERFS_METACOPY):
        for m in (km, lm2):
            os.chmod(os.path.join(m, "hard/a"), 0o750)
            with open(os.path.join(m, "bin/suid"), "ab") as f:
                f.write(b"?")
            settle_times(m, 4)
            os.utime(os.path.join(m, "bin/suid"), ns=(T1, T1))
        views_agree(f"writable over the {label} as a lower", km, lm2, problems)
        if metacopy_files(lu) != metacopy_files(ku):
            problems.append(f"writable over the {label} as a lower: metacopy files "
                            f"{sorted(metacopy_files(lu))}, the kernel's "
                            f"{sorted(metacopy_files(ku))}")
    check_tools(tmp, f"upper over the {label}", lu, layers, problems)
    print(f"the {label} as a lower: {len(expected)} entries compared")


def write_kernel_metacopy(tmp, lowers, ku, problems):
    """layerfs writes to the kernel's redirected metacopy files: the data
    comes from the lower the redirect names; the kernel shows the result."""
    lm, lw, km, kw = harness.make_dirs(os.path.join(tmp, "kernel-written"), "lm", "lw", "km", "kw")
    want = {"dir/xattr.moved": read(os.path.join(lowers[1], "xattr")) + b"!",
            "lib/blob.renamed": read(os.path.join(lowers[1], "lib/blob"))[:100],
            "moved-sub/deep": read(os.path.join(lowers[1], "dir/sub/deep")) + b"!"}
    sparse = bytearray(read(os.path.join(lowers[1], "sparse")))
    sparse[10 * MiB:10 * MiB + 3] = b"mid"
    want["sparse"] = want["sparse.link"] = bytes(sparse)
    with harness.layerfs(lm, lowers, ku, lw, LAYERFS_METACOPY):
        j = lambda rel: os.path.join(lm, rel)
        for rel in ("dir/xattr.moved", "moved-sub/deep"):
            with open(j(rel), "ab") as f:
                f.write(b"!")
        os.truncate(j("lib/blob.renamed"), 100)
        with open(j("sparse.link"), "r+b") as f:
            f.seek(10 * MiB)
            f.write(b"mid")
        for rel, data in want.items():
            if read(j(rel)) != data:
                problems.append(f"write through layerfs to the kernel's {rel}: wrong data")
        a, b = os.lstat(j("sparse")), os.lstat(j("sparse.link"))
        if a.st_ino != b.st_ino or a.st_nlink != 2:
            problems.append(f"kernel's linked metacopy file after a write through layerfs: "
                            f"st_ino {a.st_ino}/{b.st_ino}, nlink {a.st_nlink}")
        expected = harness.snapshot(lm)
        check_data_copied("layerfs over kernel upper", ku, lm, set(want), problems)
    if not os.path.samefile(os.path.join(ku, "sparse"), os.path.join(ku, "sparse.link")):
        problems.append("layerfs over kernel upper: the data copy-up split the hard link")
    with harness.kernel_overlay(km, lowers, ku, kw, KERNEL_METACOPY):
        problems += harness.compare(expected, harness.snapshot(km),
                                    "kernel view after layerfs wrote its metacopy files")
    print(f"layerfs wrote {len(want)} of the kernel's metacopy files")


# --- tools ------------------------------------------------------------------------

def layerctl(*args):
    r = subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"layerctl {' '.join(args)} failed ({r.returncode}): "
                           f"{r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def tar_members(path):
    """{rel: (member, data)} of a layer tarball's regular files and links."""
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            if m.isreg() or m.islnk():
                out[name.rstrip("/")] = (m, t.extractfile(m).read())
    return out


def stat_change(below, above):
    """What diff reports for a file: A, C, or None when its stat is the
    lower's (layer_diff.h: a copy-up with identical stat is no change, and
    an xattr-only change is none either)."""
    if below is None:
        return "A"
    a, b = os.lstat(below), os.lstat(above)
    fields = ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns")
    return "C" if any(getattr(a, f) != getattr(b, f) for f in fields) else None


def check_tools(tmp, label, upper, lowers, problems):
    """diff, size and commit on an upper holding metacopy files."""
    flags = ["--lower", ":".join(lowers), "--upper", upper]
    meta = metacopy_files(upper)
    if not meta:
        problems.append(f"tools on {label}: no metacopy file to look at")
        return
    kinds = {row["path"]: row["kind"] for row in json.loads(layerctl("diff", "--json", *flags))}
    listed = 0
    for rel in sorted(meta):
        want = stat_change(lower_path(lowers, rel), os.path.join(upper, rel))
        listed += want is not None
        if kinds.get("/" + rel) != want:
            problems.append(f"diff of {label}: /{rel} listed as {kinds.get('/' + rel)}, "
                            f"expected {want}")
    if not listed:
        problems.append(f"diff of {label}: no metacopy file with a change diff reports")

    total, _, _ = tree_size(upper)
    seen, meta_bytes = set(), 0
    for rel in meta:
        st = os.lstat(os.path.join(upper, rel))
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            meta_bytes += st.st_size
    size_rw = json.loads(layerctl("size", "--json", *flags))["SizeRw"]
    if size_rw != total - meta_bytes:
        problems.append(f"size of {label}: SizeRw {size_rw}, expected {total - meta_bytes} "
                        f"(the {meta_bytes} B of metacopy files count 0)")

    tar = os.path.join(tmp, label.replace(" ", "-") + ".tar")
    layerctl("commit", *flags, "-o", tar, "--quiet")
    members = tar_members(tar)
    for rel, (is_meta, _) in sorted(markers(upper).items()):
        p = os.path.join(upper, rel)
        if rel not in members:
            problems.append(f"commit of {label}: {rel} is not in the tar")
            continue
        member, data = members[rel]
        want = read(lower_data(upper, rel, lowers) if is_meta else p)
        if data != want:
            problems.append(f"commit of {label}: {rel}: {len(data)} B that are not the "
                            f"{'lower' if is_meta else 'upper'}'s {len(want)} B")
        st = os.lstat(p)
        if (member.mode, member.uid, member.gid, member.mtime) != \
                (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)):
            problems.append(f"commit of {label}: {rel}: tar has mode {oct(member.mode)} "
                            f"{member.uid}:{member.gid} mtime {member.mtime}, upper "
                            f"{oct(stat.S_IMODE(st.st_mode))} {st.st_uid}:{st.st_gid} "
                            f"{int(st.st_mtime)}")
    print(f"tools on {label}: {len(meta)} metacopy files, {listed} with a stat change; "
          f"diff, size and commit checked")


# --- differential -----------------------------------------------------------------

def add_lower_files(layers):
    """More lower-only files than the random ops use up, in the lower two."""
    rnd = random.Random(9)
    for i in range(180):  # in a dozen top-level dirs: one rm -rf takes few
        stacks.write(os.path.join(layers[1 + i % 2], f"pkg{i % 12}/f{i}"),
                     rnd.randbytes(rnd.choice([0, 100, 5000, 70000, 300000])),
                     rnd.choice([0o644, 0o755, 0o4755, 0o600]))
    for i, layer in enumerate(layers):
        stacks.set_times(layer, 10 + i)


def outcome(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return e.strerror


def refresh_metacopy(round_no, km, lm, ku, lu, problems, count=10):
    """The same metadata changes on both mounts to regular files neither
    upper holds: fresh metacopy files for the next round's random ops."""
    lower_only = []
    for dirpath, dirnames, filenames in os.walk(km):
        for n in filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), km)
            if stat.S_ISREG(os.lstat(os.path.join(km, rel)).st_mode) and not any(
                    os.path.lexists(os.path.join(u, rel)) for u in (ku, lu)):
                lower_only.append(rel)
    rnd = random.Random(round_no)
    picked = rnd.sample(sorted(lower_only), min(count, len(lower_only)))
    t = T1 + round_no
    changes = [lambda p: os.chmod(p, 0o640), lambda p: os.chown(p, 7, 8),
               lambda p: os.utime(p, ns=(t, t)), lambda p: os.setxattr(p, "user.round", b"r")]
    for k, rel in enumerate(picked):
        got = [outcome(lambda: changes[k % 4](os.path.join(m, rel))) for m in (km, lm)]
        if got[0] != got[1]:
            problems.append(f"round {round_no}: change {k % 4} of {rel}: kernel {got[0]}, "
                            f"layerfs {got[1]}")


def align_dir_mtimes(round_no, km, lm):
    """Sets a directory's mtime alike in both views where they differ, and
    says where. A failed rename(2) of a merged dir onto a non-empty upper
    dir copies the source up first in the kernel, which moves the parent's
    mtime; layerfs fails first. That is no metacopy matter (metacopy=off
    shows it too), so it is noted here, not counted."""
    t = T1 + 7_000_000 + round_no
    for dirpath, dirnames, filenames in os.walk(km):
        rel = os.path.relpath(dirpath, km)
        other = os.path.join(lm, rel)
        if os.path.isdir(other) and not os.path.islink(other) and \
                os.lstat(dirpath).st_mtime_ns != os.lstat(other).st_mtime_ns:
            print(f"note: round {round_no}: {rel}: directory mtime differs, set alike")
            for d in (dirpath, other):
                os.utime(d, ns=(t, t), follow_symlinks=False)


def differential_run(tmp, seed, ops, problems):
    """run_both in rounds of ROUND ops (seeds seed*1000+i), each started by
    metadata changes that make fresh metacopy files (a file keeps that form
    only until a random op writes it); after each round the views, the
    metacopy files' st_blocks and the uppers' forms are checked."""
    base = os.path.join(tmp, "differential")
    original = stacks.build_kernel_form(os.path.join(base, "layers"), xattr_whiteouts=False)
    add_lower_files(original)
    copies = {}
    for who in ("kernel", "layerfs"):
        dst = os.path.join(base, who + "-layers")
        subprocess.run(["cp", "-a", os.path.join(base, "layers"), dst], check=True, timeout=120)
        copies[who] = [os.path.join(dst, os.path.basename(l)) for l in original]
        if [harness.tree_digest(l) for l in copies[who]] != \
                [harness.tree_digest(l) for l in original]:
            problems.append(f"differential: cp -a did not copy the stack exactly for {who}")
    ku, kw, km, lu, lw, lm = harness.make_dirs(base, "ku", "kw", "km", "lu", "lw", "lm")
    mismatches, seen_meta, seen_both = 0, set(), set()
    with harness.lowers_unchanged(copies["kernel"] + copies["layerfs"], problems):
        with harness.kernel_overlay(km, copies["kernel"], ku, kw, KERNEL_METACOPY), \
                harness.layerfs(lm, copies["layerfs"], lu, lw, LAYERFS_METACOPY):
            for i, done in enumerate(range(0, ops, ROUND)):
                label = f"differential seed {seed * 1000 + i}"
                refresh_metacopy(i, km, lm, ku, lu, problems)
                n, found = differential.run_both(km, lm, seed * 1000 + i, min(ROUND, ops - done),
                                                 label)
                mismatches += n
                problems += found
                align_dir_mtimes(i, km, lm)
                expected = harness.snapshot(km)
                problems += [f"{label}: {p}" for p in
                             harness.compare(expected, harness.snapshot(lm), "layerfs")]
                kernel_meta, layerfs_meta = metacopy_files(ku), metacopy_files(lu)
                both = kernel_meta & layerfs_meta
                seen_meta |= layerfs_meta
                seen_both |= both
                kernel_blocks, layerfs_blocks = block_counts(km), block_counts(lm)
                problems += [f"{label}: {p}" for p in compare_blocks(
                    {p: kernel_blocks.get(p) for p in both},
                    {p: layerfs_blocks.get(p) for p in both}, "layerfs (metacopy in both)")]
                problems += [f"{label}: {rel}: metacopy in layerfs's upper, the kernel "
                             f"copied its data" for rel in sorted(layerfs_meta - kernel_meta)[:20]]
                print(f"{label}: {min(ROUND, ops - done)} ops; metacopy files: kernel "
                      f"{len(kernel_meta)}, layerfs {len(layerfs_meta)}, both {len(both)}")
        print(f"differential: {ops} ops, {mismatches} outcome mismatches, {len(expected)} "
              f"entries; {len(seen_meta)} paths were metacopy in layerfs's upper at some "
              f"point, {len(seen_both)} in both uppers")
        if not seen_both:
            problems.append("differential: no file was metacopy in both uppers: untested")
        km2, kw2, lm2, lw2 = harness.make_dirs(base, "km2", "kw2", "lm2", "lw2")
        with harness.kernel_overlay(km2, copies["layerfs"], lu, kw2, KERNEL_METACOPY):
            problems += [f"differential: {p}" for p in harness.compare(
                expected, harness.snapshot(km2), "kernel view of layerfs upper")]
        with harness.layerfs(lm2, copies["kernel"], ku, lw2, LAYERFS_METACOPY):
            problems += [f"differential: {p}" for p in harness.compare(
                expected, harness.snapshot(lm2), "layerfs view of kernel upper")]


# --- refused and default ----------------------------------------------------------

def expect_refused(problems, lowers, upper, work, mnt, extra, needle, preexec=None):
    """The mount fails with one line naming `needle` and changes nothing."""
    before = exact_tree(upper), exact_tree(work)
    cmd = [harness.LAYERFS, "-o", harness.layerfs_options(lowers, upper, work, extra), mnt]
    what = f"{','.join(extra)}{' by nobody' if preexec else ''}"
    lines = []
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, preexec_fn=preexec)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if r.returncode == 0:
            problems.append(f"{what}: exit 0, expected a refusal")
        elif len(lines) != 1 or needle not in lines[0] or not lines[0].startswith("layerfs: "):
            problems.append(f"{what}: expected one 'layerfs: ' line naming {needle!r}, "
                            f"got {r.stderr!r}")
        if harness.is_mounted(mnt):
            problems.append(f"{what}: left a mount behind")
    finally:
        harness.unmount(mnt)
    if (exact_tree(upper), exact_tree(work)) != before:
        problems.append(f"{what}: the refused mount changed the upper or work dir")
    print(f"{what}: refused with {lines[-1] if lines else 'nothing'!r}")


def refused(tmp, problems):
    base = os.path.join(tmp, "refused")
    lower, u, w, m, nu, nw, nm = harness.make_dirs(base, "lower", "u", "w", "m", "nu", "nw", "nm")
    stacks.write(os.path.join(lower, "f"), b"lower")
    stacks.write(os.path.join(u, "kept"), b"upper")
    for d in (nu, nw, nm):  # fusermount3 wants nobody's own mount point
        os.chown(d, NOBODY, NOBODY)
    expect_refused(problems, [lower], u, w, m, ["metacopy=bogus"], "metacopy")
    expect_refused(problems, [lower], u, w, m, ["metacopy=on", "userxattr"], "userxattr")

    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    expect_refused(problems, [lower], nu, nw, nm, ["metacopy=on"], "metacopy", preexec=drop)
    # the same daemon without metacopy=on mounts: the refusal was metacopy's
    with harness.layerfs(nm, [lower], nu, nw, preexec=drop):
        shown = harness.as_user(lambda: read(os.path.join(nm, "f")).decode(), NOBODY)
        if shown != "lower":
            problems.append(f"nobody's daemon without metacopy=on shows {shown!r}")


def default_copies_data(tmp, lowers, problems):
    """metacopy=off, and no option, copy the whole file on a chmod."""
    for label, extra in (("metacopy=off", ["metacopy=off"]), ("no metacopy option", [])):
        u, w, m = harness.make_dirs(os.path.join(tmp, label.replace(" ", "-")), "u", "w", "m")
        with harness.layerfs(m, lowers, u, w, extra):
            os.chmod(os.path.join(m, "untouched"), 0o600)
            os.setxattr(os.path.join(m, "page"), "user.x", b"1")
        for rel in ("untouched", "page"):
            up, low = os.path.join(u, rel), lower_path(lowers, rel)
            if METACOPY in os.listxattr(up):
                problems.append(f"{label}: {rel} copied up as metacopy")
            if harness.file_digest(up) != harness.file_digest(low) or \
                    os.lstat(up).st_blocks < os.lstat(low).st_blocks:
                problems.append(f"{label}: {rel}: the upper does not hold the lower's data")
    print("metacopy=off and the default copy the data")


def kernel_takes_metacopy(tmp):
    lower, upper, work, mnt = harness.make_dirs(os.path.join(tmp, "probe"), "l", "u", "w", "m")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}," + ",".join(KERNEL_METACOPY)
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt],
                       capture_output=True, text=True, timeout=20)
    harness.unmount(mnt)
    return r.returncode == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    harness.start(580)
    problems = []
    with harness.temp_dir() as tmp:
        os.chmod(tmp, 0o755)  # nobody's daemon reads a lower below it
        harness.private_fuse_namespace(tmp)
        if not kernel_takes_metacopy(tmp):
            harness.skip("kernel overlayfs refuses metacopy=on")
        lowers = build_lowers(os.path.join(tmp, "layers"))
        both_ways(tmp, lowers, problems)
        default_copies_data(tmp, lowers, problems)
        refused(tmp, problems)
        differential_run(tmp, args.seed, args.ops, problems)
    harness.check(problems[:200])


if __name__ == "__main__":
    main()
