"""The daemon's command line: the fuse-overlayfs-compatible forms work, and
bad input gives a one-line error, a non-zero exit, and nothing mounted.
"""
import os
import subprocess

import harness


def run(args, **kw):
    return subprocess.run([harness.LAYERFS] + args, capture_output=True, text=True,
                          timeout=30, **kw)


def expect_error(problems, args, needle, mnt):
    r = run(args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if r.returncode == 0:
        problems.append(f"{args}: exit 0, expected an error")
    elif len(lines) != 1 or needle not in lines[0] or not lines[0].startswith("layerfs: "):
        problems.append(f"{args}: expected one line naming '{needle}', got {r.stderr!r}")
    if harness.is_mounted(mnt):
        problems.append(f"{args}: left a mount behind")
        harness.unmount(mnt)


def expect_mount(problems, args, mnt, check_file, expect_warning=None):
    """Runs the daemonizing form; it must return 0 only once mounted."""
    r = run(args)
    try:
        if r.returncode != 0:
            problems.append(f"{args}: exit {r.returncode}: {r.stderr.strip()}")
            return
        if not harness.is_mounted(mnt):
            problems.append(f"{args}: returned before the mount was up")
            return
        if not os.path.exists(os.path.join(mnt, check_file)):
            problems.append(f"{args}: {check_file} not visible")
        if expect_warning and expect_warning not in r.stderr:
            problems.append(f"{args}: no warning about {expect_warning}: {r.stderr!r}")
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if f" {os.path.realpath(mnt)} " in l)
        if " - fuse.layerfs " not in line:
            problems.append(f"not reported as fuse.layerfs: {line.strip()}")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], timeout=20)
        if harness.is_mounted(mnt):
            problems.append(f"{args}: fusermount3 -u did not unmount")
            harness.unmount(mnt)


def main():
    harness.start(180)
    problems = []
    with harness.temp_dir() as tmp:
        a, b, colon = (os.path.join(tmp, n) for n in ("a", "b", "with:colon"))
        mnt = os.path.join(tmp, "mnt")
        for d in (a, b, colon, mnt):
            os.mkdir(d)
        open(os.path.join(a, "in-a"), "w").close()
        open(os.path.join(colon, "in-colon"), "w").close()
        open(os.path.join(tmp, "file"), "w").close()

        expect_error(problems, [mnt], "lowerdir", mnt)
        expect_error(problems, ["-o", f"upperdir={b}", mnt], "lowerdir", mnt)
        expect_error(problems, ["-o", f"lowerdir={tmp}/missing", mnt], f"{tmp}/missing", mnt)
        expect_error(problems, ["-o", f"lowerdir={a}:{tmp}/file", mnt], "not a directory", mnt)
        expect_error(problems, ["-o", f"lowerdir={a}", f"{tmp}/nomnt"], "nomnt", mnt)
        expect_error(problems, ["-o", f"lowerdir={a},uidmapping=zz", mnt], "uidmapping", mnt)
        expect_error(problems, ["-o", f"lowerdir={a},timeout=soon", mnt], "timeout", mnt)
        expect_error(problems, ["-o", f"lowerdir={a},writeback=2", mnt], "writeback", mnt)
        expect_error(problems, ["-o", f"lowerdir={a},upperdir={b}", mnt], "workdir", mnt)
        expect_error(problems, ["--bogus", "-o", f"lowerdir={a}", mnt], "--bogus", mnt)
        expect_error(problems, ["-o"], "-o", mnt)
        expect_error(problems, ["-o", f"lowerdir={a}::{b}", mnt], "data-only", mnt)
        expect_error(problems, ["-o", f"lowerdir={a}:", mnt], "empty layer", mnt)
        expect_error(problems, ["-o", f'lowerdir={a},context="system_u:object_r:t:s0', mnt],
                     "unterminated", mnt)
        # a second daemon over a live mount is refused, and the first one keeps serving
        with harness.layerfs(mnt, [a]):
            r = run(["-o", f"lowerdir={b}", mnt])
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            if r.returncode == 0 or len(lines) != 1 or "already a layerfs mount" not in lines[0]:
                problems.append(f"mount over a live layerfs mount: exit {r.returncode}, "
                                f"{r.stderr!r}")
                harness.unmount(mnt)
            elif not os.path.exists(os.path.join(mnt, "in-a")):
                problems.append("the first mount stopped serving after a refused second one")

        expect_mount(problems, ["-o", f"lowerdir={a}:{b}", mnt], mnt, "in-a")
        # trailing comma, unknown option (warned), fuse-overlayfs options
        expect_mount(problems, ["-o", f"lowerdir={a},frobnicate=1,squash_to_root,"
                                f"uidmapping=0:0:65536,gidmapping=0:0:65536,", mnt],
                     mnt, "in-a", expect_warning="frobnicate")
        # \: escapes a colon inside a lowerdir path
        escaped = colon.replace(":", "\\:")
        expect_mount(problems, ["-o", f"lowerdir={escaped}:{a}", mnt], mnt, "in-colon")
        # context="..." may contain commas
        expect_mount(problems, ["-o", f'lowerdir={a},context="system_u:object_r:container_file_t:s0:c1,c2"',
                                mnt], mnt, "in-a")
        # the mount helper form: SOURCE MOUNTPOINT -o ...
        expect_mount(problems, ["mysource", mnt, "-o", f"lowerdir={a}"], mnt, "in-a")
        # and through mount(8) and mount.fuse3, which runs "PROGRAM SOURCE MNT -o OPTS"
        # (mount(8) gives helpers a fixed PATH, so the program is named absolutely)
        r = subprocess.run(["mount", "-t", "fuse", f"{harness.LAYERFS}#demo", mnt, "-o",
                            f"lowerdir={a}"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            problems.append(f"mount -t fuse PROGRAM#SOURCE failed: {r.stderr.strip()}")
        elif not os.path.exists(os.path.join(mnt, "in-a")):
            problems.append("mount -t fuse: content not visible")
        harness.unmount(mnt)

        # squash_to_root shows every owner as root
        os.chown(os.path.join(a, "in-a"), 1234, 5678)
        with harness.layerfs(mnt, [a], extra=["squash_to_root"]):
            st = os.lstat(os.path.join(mnt, "in-a"))
            if (st.st_uid, st.st_gid) != (0, 0):
                problems.append(f"squash_to_root shows {st.st_uid}:{st.st_gid}")
        with harness.layerfs(mnt, [a], extra=["uidmapping=0:1234:1", "gidmapping=0:5000:1000"]):
            st = os.lstat(os.path.join(mnt, "in-a"))
            if (st.st_uid, st.st_gid) != (0, 678):
                problems.append(f"uid/gid mapping shows {st.st_uid}:{st.st_gid}")
        # both data paths: through the kernel's writeback cache (the default)
        # and straight through; appends land at the end either way
        for wb in ("1", "0"):
            u, w = os.path.join(tmp, f"u{wb}"), os.path.join(tmp, f"w{wb}")
            os.mkdir(u)
            os.mkdir(w)
            with harness.layerfs(mnt, [a], u, w, extra=[f"writeback={wb}"]):
                p = os.path.join(mnt, "log")
                with open(p, "wb") as f:
                    f.write(b"x" * 5000)
                fd = os.open(p, os.O_WRONLY | os.O_APPEND)
                os.write(fd, b"tail")
                os.close(fd)
                os.chmod(p, 0o200)  # write-only: the kernel still fills partial pages
                fd = os.open(p, os.O_WRONLY)
                os.pwrite(fd, b"mid", 100)
                os.close(fd)
                seen = os.lstat(p).st_size
            with open(os.path.join(u, "log"), "rb") as f:
                data = f.read()
            want = b"x" * 100 + b"mid" + b"x" * 4897 + b"tail"
            if data != want or seen != len(want):
                problems.append(f"writeback={wb}: upper holds {len(data)} bytes "
                                f"(mount showed {seen}), not the {len(want)} written")
    harness.check(problems)


if __name__ == "__main__":
    main()
