"""Writable-layout checks: bad upper/work combinations are refused with one
line and nothing mounted; leftovers of a crash in the work dir are cleaned.
"""
import os
import subprocess

import harness


def expect_refusal(problems, lowers, upper, work, needle, mnt):
    r = subprocess.run([harness.LAYERFS, "-o",
                        harness.layerfs_options(lowers, upper, work), mnt],
                       capture_output=True, text=True, timeout=30)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if r.returncode == 0 or len(lines) != 1 or needle not in lines[0]:
        problems.append(f"upper={upper} work={work}: exit {r.returncode}, {r.stderr!r}; "
                        f"expected one line with '{needle}'")
    if harness.is_mounted(mnt):
        problems.append(f"upper={upper} work={work}: left a mount")
        harness.unmount(mnt)


def main():
    harness.start(180)
    problems = []
    with harness.temp_dir() as tmp:
        j = lambda *p: os.path.join(tmp, *p)
        for d in ("lower/inner", "upper", "work", "mnt", "upper/inwork", "ro"):
            os.makedirs(j(d))
        mnt = j("mnt")
        lowers = [j("lower")]
        expect_refusal(problems, lowers, j("upper"), j("upper"), "same directory", mnt)
        expect_refusal(problems, lowers, j("lower/inner"), j("work"), "inside lowerdir", mnt)
        expect_refusal(problems, [j("upper")], j("upper/inwork"), j("work"), "inside lowerdir", mnt)
        expect_refusal(problems, lowers, j("upper"), j("upper/inwork"), "inside upperdir", mnt)
        expect_refusal(problems, lowers, j("upper"), j("missing"), "missing", mnt)
        # workdir on another filesystem (a tmpfs)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", j("ro")], check=True)
        os.makedirs(j("ro/u"))
        os.makedirs(j("ro/w"))
        expect_refusal(problems, lowers, j("upper"), j("ro/w"), "same filesystem", mnt)
        # an upper on a read-only filesystem
        subprocess.run(["mount", "-o", "remount,ro", j("ro")], check=True)
        expect_refusal(problems, lowers, j("ro/u"), j("ro/w"), "read-only", mnt)
        harness.unmount(j("ro"))

        # crash leftovers in W/work are removed at the next mount
        os.makedirs(j("work/work/#lfs-crashed/deep"))
        with open(j("work/work/#lfs-crashed/deep/partial"), "w") as f:
            f.write("half a copy-up")
        open(j("lower/file"), "w").close()
        with harness.layerfs(mnt, lowers, j("upper"), j("work")):
            if os.listdir(j("work/work")):
                problems.append(f"work dir not cleaned: {os.listdir(j('work/work'))}")
            with open(os.path.join(mnt, "file"), "w") as f:
                f.write("written")
        if open(j("upper/file")).read() != "written":
            problems.append("write did not land in the upper")
        if os.path.getsize(j("lower/file")) != 0:
            problems.append("the lower was written")
    harness.check(problems)


if __name__ == "__main__":
    main()
