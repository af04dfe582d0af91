"""Bad input, table-driven, for layerfs and every layerctl subcommand.

Each case must give exactly one line on stderr that names the problem (the
given text must appear in it), a non-zero exit, nothing mounted, and no
change anywhere in the test's tree (every entry's type, mode, size, mtime
and content are compared before and after).
"""
import os
import subprocess

import harness


def tree_state(root):
    """Every entry below root with what a stray write would change."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames + ["."]:
            p = os.path.normpath(os.path.join(dirpath, n))
            st = os.lstat(p)
            state[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                st.st_nlink)
    return state


def build(tmp):
    d = {n: os.path.join(tmp, n) for n in
         ("lower", "lower2", "upper", "work", "mnt", "file", "empty", "out")}
    for n in ("lower", "lower2", "upper", "work", "mnt", "empty", "out"):
        os.mkdir(d[n])
    with open(os.path.join(d["lower"], "f"), "w") as f:
        f.write("lower\n")
    with open(os.path.join(d["upper"], "new"), "w") as f:
        f.write("upper\n")
    with open(d["file"], "w") as f:
        f.write("not a dir\n")
    with open(os.path.join(d["out"], "exists.tar"), "w") as f:
        f.write("keep me\n")
    with open(os.path.join(tmp, "garbage.tar"), "wb") as f:
        f.write(b"\x00garbage" * 300)
    with open(os.path.join(tmp, "truncated.tar.gz"), "wb") as f:
        f.write(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    return d


def cases(d, tmp):
    L, U, W, M = d["lower"], d["upper"], d["work"], d["mnt"]
    lf = [harness.LAYERFS]
    lc = [harness.LAYERCTL]
    good = f"lowerdir={L},upperdir={U},workdir={W}"
    return [
        # layerfs: options
        (lf + [M], "lowerdir"),
        (lf + ["-o", f"upperdir={U},workdir={W}", M], "lowerdir"),
        (lf + ["-o", "lowerdir=", M], "empty"),
        (lf + ["-o", f"lowerdir={L}::{d['lower2']}", M], "data-only"),
        (lf + ["-o", f"lowerdir={L}:", M], "empty layer"),
        (lf + ["-o", f"lowerdir=:{L}", M], "empty layer"),
        (lf + ["-o", f"lowerdir={tmp}/missing", M], "missing"),
        (lf + ["-o", f"lowerdir={d['file']}", M], "not a directory"),
        (lf + ["-o", f"lowerdir={L},upperdir={U}", M], "workdir"),
        (lf + ["-o", f"lowerdir={L},workdir={W}", M], "upperdir"),
        (lf + ["-o", f"lowerdir={L},upperdir={tmp}/nothere,workdir={W}", M], "nothere"),
        (lf + ["-o", f"lowerdir={L},upperdir={U},workdir={tmp}/nowork", M], "nowork"),
        (lf + ["-o", f"lowerdir={L},upperdir={U},workdir={U}", M], "workdir"),
        (lf + ["-o", f"lowerdir={L},upperdir={L}/..,workdir={W}", M], "upper"),
        (lf + ["-o", f"lowerdir={L},uidmapping=0:0", M], "uidmapping"),
        (lf + ["-o", f"lowerdir={L},gidmapping=a:b:c", M], "gidmapping"),
        # a value with a newline is quoted, never printed as a second line
        (lf + ["-o", f"lowerdir={L},uidmapping=0:1000:1\nforged line", M], "uidmapping"),
        (lf + ["-o", f"lowerdir={L},uidmapping=0:1000:10:5:2000:10", M], "uidmapping"),
        (lf + ["-o", f"lowerdir={L},squash_to_uid=-5", M], "squash_to_uid"),
        (lf + ["-o", f"lowerdir={L},squash_to_gid=x", M], "squash_to_gid"),
        (lf + ["-o", f"lowerdir={L},xattr_permissions=3", M], "xattr_permissions"),
        (lf + ["-o", f"lowerdir={L},timeout=-1", M], "timeout"),
        (lf + ["-o", f"lowerdir={L},fsync=yes", M], "fsync"),
        (lf + ["-o", f"lowerdir={L},writeback=on", M], "writeback"),
        (lf + ["-o", f'lowerdir={L},context="unterminated', M], "unterminated"),
        (lf + ["-o", good, f"{tmp}/nomnt"], "nomnt"),
        (lf + ["-o", good, d["file"]], "not a directory"),
        (lf + ["-o", good, M, "extra"], "extra"),
        (lf + ["--bogus", "-o", good, M], "--bogus"),
        (lf + ["-o"], "-o"),
        # layerctl diff / size
        (lc + ["diff"], "MOUNTPOINT"),
        (lc + ["diff", "--lower", L], "--upper"),
        (lc + ["diff", "--lower", f"{L}::{L}", "--upper", U], "data-only"),
        (lc + ["diff", "--lower", f"{tmp}/missing", "--upper", U], "missing"),
        (lc + ["diff", "--lower", L, "--upper", d["file"]], "file"),
        (lc + ["diff", d["empty"]], "not a layerfs mount"),
        (lc + ["diff", "--bogus"], "--bogus"),
        (lc + ["size", "--lower", L, "--upper", U, "--top", "x"], "--top"),
        (lc + ["size", f"{tmp}/missing"], "missing"),
        (lc + ["size", "--lower", L, "--upper", d["file"]], "not a directory"),
        (lc + ["commit", "--upper", f"{tmp}/missing", "--oci-layout",
               os.path.join(d["out"], "layout"), "--tag", "t"], "missing"),
        # layerctl ps / inspect
        (lc + ["ps", "extra"], "extra"),
        (lc + ["inspect"], "MOUNTPOINT"),
        (lc + ["inspect", d["empty"]], "not a layerfs mount"),
        (lc + ["inspect", f"{tmp}/missing"], "No such file"),
        # layerctl commit
        (lc + ["commit", "--upper", U], "-o FILE"),
        (lc + ["commit", "--upper", U, "-o", os.path.join(d["out"], "x.tar"),
               "--compress", "lz4"], "lz4"),
        (lc + ["commit", "--upper", f"{tmp}/missing", "-o", os.path.join(d["out"], "x.tar")],
         "missing"),
        (lc + ["commit", "--upper", U, "-o", os.path.join(tmp, "nodir", "x.tar")], "nodir"),
        (lc + ["commit", "--lower", f"{L}:", "--upper", U, "-o",
               os.path.join(d["out"], "x.tar")], "empty layer"),
        (lc + ["commit", d["empty"], "-o", os.path.join(d["out"], "x.tar")],
         "not a layerfs mount"),
        # layerctl apply
        (lc + ["apply"], "FILE"),
        (lc + ["apply", os.path.join(tmp, "garbage.tar"), os.path.join(tmp, "new1")], "garbage"),
        (lc + ["apply", os.path.join(tmp, "truncated.tar.gz"), os.path.join(tmp, "new2")],
         "truncated"),
        (lc + ["apply", f"{tmp}/missing.tar", os.path.join(tmp, "new3")], "missing"),
        (lc + ["apply", os.path.join(tmp, "garbage.tar"), L], "lower"),
        (lc + ["apply", os.path.join(tmp, "garbage.tar"), d["file"]], "file"),
        (lc + ["apply", "--whiteout-format", "aufs", os.path.join(tmp, "garbage.tar"),
               os.path.join(tmp, "new4")], "aufs"),
        (lc + ["apply", "--diff-id", "sha256:00", os.path.join(tmp, "garbage.tar"),
               os.path.join(tmp, "new5")], "--diff-id"),
        (lc + ["bogus-subcommand"], "bogus-subcommand"),
        (lc + [], "subcommand"),
    ]


def main():
    harness.start(300)
    problems = []
    with harness.temp_dir() as tmp:
        d = build(tmp)
        table = cases(d, tmp)
        for argv, needle in table:
            before = tree_state(tmp)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            shown = " ".join(a.replace(tmp, "T") for a in argv[1:])
            if r.returncode == 0:
                problems.append(f"{shown}: exit 0")
            elif len(lines) != 1 or needle not in lines[0]:
                problems.append(f"{shown}: expected one line naming '{needle}', got {r.stderr!r}")
            if harness.is_mounted(d["mnt"]):
                problems.append(f"{shown}: left a mount")
                harness.unmount(d["mnt"])
            after = tree_state(tmp)
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                problems.append(f"{shown}: changed the tree: {changed[:4]}")
        print(f"{len(table)} bad inputs tried")
    harness.check(problems)


if __name__ == "__main__":
    main()
