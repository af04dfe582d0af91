"""`layerctl commit MOUNTPOINT` and the command-line contract of commit/apply.

 - On a live writable layerfs mount, commit MOUNTPOINT writes the same bytes
   as commit --upper/--lower over the dirs the daemon names; a read-only
   mount or a plain dir is refused with one line.
 - A failed commit leaves no output file; a refused apply leaves no DIR and
   no temporary dir; both exit non-zero with one "layerctl: ..." line.
"""
import os
import subprocess
import tarfile

import commit_tools as ct
import harness


def one_line_failure(r, what, problems):
    lines = r["_stderr"].strip().splitlines()
    if r["_rc"] == 0 or len(lines) != 1 or not lines[0].startswith("layerctl: "):
        problems.append(f"{what}: rc {r['_rc']}, stderr {r['_stderr']!r}")


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as tmp:
        lower, upper, work, mnt = harness.make_dirs(tmp, "lower", "upper", "work", "mnt")
        os.makedirs(os.path.join(lower, "etc"))
        for n in ("a", "b", "c"):
            with open(os.path.join(lower, "etc", n), "w") as f:
                f.write(n)
        with harness.layerfs(mnt, [lower], upper, work):
            with open(os.path.join(mnt, "etc/a"), "a") as f:
                f.write("changed")
            os.unlink(os.path.join(mnt, "etc/b"))
            os.makedirs(os.path.join(mnt, "new/dir"))
            via_mount = ct.layerctl("commit", mnt, "-o", os.path.join(tmp, "m.tar"))
            direct = ct.layerctl("commit", "--lower", lower, "--upper", upper,
                                 "-o", os.path.join(tmp, "d.tar"))
        if via_mount["diff_id"] != direct["diff_id"]:
            problems.append("commit MOUNTPOINT differs from commit --upper/--lower")
        names = tarfile.open(os.path.join(tmp, "m.tar")).getnames()
        for want in ("etc/.wh.b", "etc/a", "new/dir"):
            if want not in names:
                problems.append(f"{want} missing from the commit: {names}")

        ro = os.path.join(tmp, "ro")
        os.makedirs(ro)
        with harness.layerfs(ro, [lower]):
            one_line_failure(ct.layerctl("commit", ro, "-o", os.path.join(tmp, "ro.tar"),
                                         check=False), "read-only mount", problems)
        one_line_failure(ct.layerctl("commit", lower, "-o", os.path.join(tmp, "x.tar"),
                                     check=False), "plain dir", problems)
        for left in ("ro.tar", "x.tar"):
            if os.path.exists(os.path.join(tmp, left)):
                problems.append(f"a failed commit left {left}")

        bad = os.path.join(tmp, "bad.tar")
        with tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo("../escape")
            t.addfile(info)
        box = os.path.join(tmp, "box")
        os.makedirs(box)
        r = ct.layerctl("apply", bad, os.path.join(box, "out"), check=False)
        one_line_failure(r, "hostile apply", problems)
        if os.listdir(box):
            problems.append(f"a refused apply left {os.listdir(box)}")
        if os.path.exists(os.path.join(tmp, "escape")):
            problems.append("apply wrote outside DIR")
        r = ct.layerctl("apply", os.path.join(tmp, "d.tar"), os.path.join(box, "out"),
                        "--diff-id", "sha256:" + "0" * 64, check=False)
        one_line_failure(r, "wrong --diff-id", problems)
        if os.listdir(box):
            problems.append("a DiffID mismatch left a DIR")
    harness.check(problems)


if __name__ == "__main__":
    main()
