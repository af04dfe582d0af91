"""The read-only merged view equals kernel overlayfs's, entry by entry.

Builds a three-layer stack in the kernel's own format (char 0/0 whiteouts,
trusted.overlay.opaque=y, opaque=x with xattr whiteouts), mounts it under
kernel overlayfs and under layerfs, and compares names, types, modes,
owners, sizes, mtimes (ns), rdev, symlink targets, xattrs and content. Then
checks layerfs's own promises: unique and stable st_ino, readdir d_ino equal
to st_ino, find/du/ls -i/tar agreeing, EROFS on every write.
"""
import errno
import os
import subprocess

import harness
import stacks


def check_inodes(root, problems):
    by_ino = {}
    for dirpath, dirnames, filenames in os.walk(root):
        with os.scandir(dirpath) as it:
            for e in it:
                st = os.lstat(e.path)
                if e.inode() != st.st_ino:
                    problems.append(f"d_ino {e.inode()} != st_ino {st.st_ino}: {e.path}")
                by_ino.setdefault(st.st_ino, []).append((e.path, st))
    for ino, entries in by_ino.items():
        real = {(st.st_dev, st.st_nlink, st.st_size) for _, st in entries}
        if len(entries) > 1 and (len(real) > 1 or any(os.path.isdir(p) for p, _ in entries)):
            problems.append(f"st_ino {ino} shared by different files: {[p for p, _ in entries]}")
    # stable while mounted: the same numbers a second time
    again = {os.lstat(p).st_ino for entries in by_ino.values() for p, _ in entries}
    if again != set(by_ino):
        problems.append("st_ino changed between two walks")
    # ls -i and find -printf %i agree with stat
    ls = subprocess.run(["ls", "-ia1", os.path.join(root, "usr/lib/x")], capture_output=True,
                        text=True, check=True).stdout.split("\n")
    for line in ls:
        if line.strip():
            ino, name = line.split(None, 1)
            if name not in (".", "..") and int(ino) != os.lstat(os.path.join(root, "usr/lib/x", name)).st_ino:
                problems.append(f"ls -i disagrees for {name}")
    found = subprocess.run(["find", root, "-printf", "%i %p\n"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for line in found:
        ino, path = line.split(" ", 1)
        if int(ino) != os.lstat(path).st_ino:
            problems.append(f"find %i disagrees for {path}")
    # du counts the hardlinked pair once
    du_all = int(subprocess.run(["du", "-s", "-B1", "--apparent-size", root], capture_output=True,
                                text=True, check=True).stdout.split()[0])
    du_l = int(subprocess.run(["du", "-s", "-B1", "-l", "--apparent-size", root], capture_output=True,
                              text=True, check=True).stdout.split()[0])
    if du_l - du_all != os.lstat(os.path.join(root, "usr/bin/tool")).st_size:
        problems.append(f"du does not see the hard link: {du_all} vs {du_l}")


def check_tar(root, problems):
    """tar sees the same names, and the hard-linked pair as one link."""
    listing = subprocess.run(f"tar -C {root} -cf - . | tar -tvf -", shell=True, capture_output=True,
                             text=True, check=True).stdout
    names = {line.split()[5] for line in listing.splitlines()}
    expected = {"./" + p if p != "." else "./" for p in harness.snapshot(root, content=False)}
    expected = {p + "/" if os.path.isdir(os.path.join(root, p[2:])) and p != "./" else p for p in expected}
    if names != expected:
        problems.append(f"tar lists other names: {sorted(names ^ expected)[:10]}")
    if "link to ./usr/bin/tool" not in listing:
        problems.append("tar did not store usr/bin/tool-hardlink as a hard link")


def check_read_only(root, problems):
    attempts = [
        ("create", lambda: open(os.path.join(root, "new"), "w")),
        ("write", lambda: open(os.path.join(root, "etc/passwd"), "r+")),
        ("mkdir", lambda: os.mkdir(os.path.join(root, "d"))),
        ("unlink", lambda: os.unlink(os.path.join(root, "etc/passwd"))),
        ("rename", lambda: os.rename(os.path.join(root, "etc/passwd"), os.path.join(root, "x"))),
        ("chmod", lambda: os.chmod(os.path.join(root, "etc/passwd"), 0o600)),
        ("setxattr", lambda: os.setxattr(os.path.join(root, "etc/passwd"), "user.x", b"1")),
        ("truncate", lambda: os.truncate(os.path.join(root, "etc/passwd"), 0)),
        ("symlink", lambda: os.symlink("x", os.path.join(root, "l"))),
    ]
    for what, fn in attempts:
        try:
            fn()
            problems.append(f"{what} succeeded on a read-only stack")
        except OSError as e:
            if e.errno != errno.EROFS:
                problems.append(f"{what}: errno {e.errno}, expected EROFS")


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"))
        with harness.lowers_unchanged(lowers, problems):
            kmnt, lmnt = os.path.join(tmp, "kernel"), os.path.join(tmp, "layerfs")
            os.mkdir(kmnt)
            os.mkdir(lmnt)
            with harness.kernel_overlay(kmnt, lowers):
                expected = harness.snapshot(kmnt)
            with harness.layerfs(lmnt, lowers):
                actual = harness.snapshot(lmnt)
                problems += harness.compare(expected, actual, "layerfs")
                check_inodes(lmnt, problems)
                check_tar(lmnt, problems)
                check_read_only(lmnt, problems)
            if len(expected) < 60:
                problems.append(f"stack too small to mean anything: {len(expected)} entries")
        print(f"compared {len(expected)} entries")
    harness.check(problems)


if __name__ == "__main__":
    main()
