"""The OCI/AUFS markers (.wh.NAME, .wh..wh..opq) and the user.* opaque
xattrs give the expected view: the names they hide are gone, the markers are
never shown, and the whole view equals kernel overlayfs's over the same stack
converted to kernel form.
"""
import errno
import os

import harness
import stacks


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as tmp:
        lowers, hidden, shown = stacks.build_oci_form(os.path.join(tmp, "layers"))
        with harness.lowers_unchanged(lowers, problems):
            kernel_lowers = stacks.convert_to_kernel_form(lowers, os.path.join(tmp, "kernel-form"))
            kmnt, lmnt = os.path.join(tmp, "kernel"), os.path.join(tmp, "layerfs")
            os.mkdir(kmnt)
            os.mkdir(lmnt)
            with harness.kernel_overlay(kmnt, kernel_lowers):
                expected = harness.snapshot(kmnt)
            with harness.layerfs(lmnt, lowers):
                actual = harness.snapshot(lmnt)
                problems += harness.compare(expected, actual, "layerfs")
                for p in hidden:
                    if p in actual:
                        problems.append(f"shown but should be hidden: {p}")
                    try:
                        os.lstat(os.path.join(lmnt, p))
                        problems.append(f"lookup finds hidden {p}")
                    except OSError as e:
                        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                            problems.append(f"lookup of {p}: errno {e.errno}")
                for p in shown:
                    if p not in actual:
                        problems.append(f"missing: {p}")
                if any(os.path.basename(p).startswith(".wh.") for p in actual):
                    problems.append("a .wh. name is listed")
        print(f"compared {len(expected)} entries")
    harness.check(problems)


if __name__ == "__main__":
    main()
