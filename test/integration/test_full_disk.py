"""Full disk and failing disks: ENOSPC and EIO reach the caller, nothing
partial is left, and the mount keeps serving.

The upper and work dirs live on a small ext4 made by the test (a loop
device, 24 MiB). Writes that do not fit fail with ENOSPC (at write, fsync
or close); a copy-up that does not fit fails with ENOSPC and leaves neither
a partial file in the upper nor a temporary in the work dir, the merged
view still showing the lower content; after space is freed the same
copy-up and writes succeed. A lower layer served by a FUSE filesystem that
answers EIO (test/tools/eio_fs) gives EIO to readers and to a copy-up,
leaves nothing in the upper, and the daemon keeps serving.
"""
import errno
import os
import random
import shutil
import subprocess
import time

import harness

EIO_FS = os.environ.get("LAYERFS_EIO_FS", "")


def attempt(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def fill(path, chunk=1 << 20, limit=64):
    """Writes `path` until it is refused; returns (bytes accepted, errno)."""
    written = 0
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for _ in range(limit):
            try:
                written += os.write(fd, b"\xab" * chunk)
                os.fsync(fd)
            except OSError as e:
                return written, e.errno
    finally:
        try:
            os.close(fd)
        except OSError as e:
            return written, e.errno
    return written, None


def upper_temps(upper, work):
    found = [n for n in os.listdir(os.path.join(work, "work"))] if os.path.isdir(
        os.path.join(work, "work")) else []
    for dirpath, dirnames, filenames in os.walk(upper):
        found += [n for n in dirnames + filenames if n.startswith("#lfs")]
    return found


def full_disk(tmp, problems):
    image = os.path.join(tmp, "small.img")
    small = os.path.join(tmp, "small")
    os.makedirs(small)
    with open(image, "wb") as f:
        f.truncate(24 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image], check=True,
                   capture_output=True)
    subprocess.run(["mount", "-o", "loop", image, small], check=True, capture_output=True)
    lower = os.path.join(tmp, "lower")
    os.makedirs(lower)
    rnd = random.Random(5)
    big = rnd.randbytes(12 << 20)
    with open(os.path.join(lower, "big"), "wb") as f:
        f.write(big)
    with open(os.path.join(lower, "small"), "wb") as f:
        f.write(b"small\n")
    u, w, m = os.path.join(small, "u"), os.path.join(small, "w"), os.path.join(tmp, "m")
    for d in (u, w, m):
        os.makedirs(d)
    with harness.layerfs(m, [lower], u, w):
        # fill the small disk with a new file: ENOSPC, never a silent loss
        accepted, err = fill(os.path.join(m, "filler"))
        if err != errno.ENOSPC:
            problems.append(f"filling the upper: {accepted} bytes then {err}, not ENOSPC")
        st = os.statvfs(m)
        # a copy-up that cannot fit: ENOSPC, nothing partial
        r = attempt(lambda: open(os.path.join(m, "big"), "ab").close())
        if r != ("err", "ENOSPC"):
            problems.append(f"copy-up of 12 MiB into {st.f_bavail * st.f_frsize} free "
                            f"bytes: {r}, not ENOSPC")
        if os.path.exists(os.path.join(u, "big")):
            problems.append("a failed copy-up left big in the upper")
        if upper_temps(u, w):
            problems.append(f"a failed copy-up left temporaries: {upper_temps(u, w)}")
        with open(os.path.join(m, "big"), "rb") as f:
            if f.read() != big:
                problems.append("the merged view lost the lower content after a failed copy-up")
        # the mount keeps serving
        with open(os.path.join(m, "small"), "rb") as f:
            if f.read() != b"small\n":
                problems.append("reading a lower file after ENOSPC failed")
        if "filler" not in os.listdir(m):
            problems.append("listing after ENOSPC lost the filler")
        # small metadata changes may still fit or fail cleanly
        r = attempt(lambda: os.mkdir(os.path.join(m, "newdir")))
        if r[0] == "err" and r[1] != "ENOSPC":
            problems.append(f"mkdir on a full upper: {r}")
        # free the space: everything works again
        os.unlink(os.path.join(m, "filler"))
        subprocess.run(["sync"], check=True)
        time.sleep(0.5)
        r = attempt(lambda: open(os.path.join(m, "big"), "ab").write(b"tail"))
        if r != ("ok", 4):
            problems.append(f"copy-up after freeing space: {r}")
        else:
            with open(os.path.join(m, "big"), "rb") as f:
                if f.read() != big + b"tail":
                    problems.append("copied-up big is not its lower content plus the tail")
        accepted, err = fill(os.path.join(m, "again"), limit=2)
        if err is not None:
            problems.append(f"writing after freeing space: {err}")
    if upper_temps(u, w):
        problems.append(f"temporaries left in the work dir: {upper_temps(u, w)}")
    harness.unmount(small)
    print("full disk: ENOSPC on write and copy-up, nothing partial, served on, recovered")


def eio_lower(tmp, problems):
    if not EIO_FS or not os.access(EIO_FS, os.X_OK):
        print("eio: no eio_fs program (LAYERFS_EIO_FS): skipped")
        return False
    lower = os.path.join(tmp, "eio-lower")
    u, w, m = (os.path.join(tmp, n) for n in ("eio-u", "eio-w", "eio-m"))
    for d in (lower, u, w, m):
        os.makedirs(d)
    proc = subprocess.Popen([EIO_FS, "-f", lower], stderr=subprocess.DEVNULL)
    try:
        harness.wait_mounted(lower, proc)
        with harness.layerfs(m, [lower], u, w):
            r = attempt(lambda: open(os.path.join(m, "bad"), "rb").read())
            if r != ("err", "EIO"):
                problems.append(f"reading a lower file that fails: {r}, not EIO")
            r = attempt(lambda: open(os.path.join(m, "bad"), "ab").close())
            if r != ("err", "EIO"):
                problems.append(f"copy-up of a lower file that fails: {r}, not EIO")
            if os.path.exists(os.path.join(u, "bad")) or upper_temps(u, w):
                problems.append("a failed copy-up from a failing lower left something behind")
            r = attempt(lambda: open(os.path.join(m, "good"), "rb").read()[:15])
            if r != ("ok", b"good data line\n"):
                problems.append(f"the daemon stopped serving after EIO: {r}")
            r = attempt(lambda: open(os.path.join(m, "good"), "ab").write(b"more"))
            if r != ("ok", 4):
                problems.append(f"copy-up of a good file next to a failing one: {r}")
    finally:
        harness.unmount(lower)
        proc.wait(timeout=20)
    print("eio: EIO on read and copy-up, nothing left, daemon served on")
    return True


def main():
    harness.start(300)
    for tool in ("mkfs.ext4", "losetup"):
        if not shutil.which(tool):
            harness.skip(f"no {tool}")
    problems = []
    with harness.temp_dir() as tmp:
        full_disk(tmp, problems)
        eio_lower(tmp, problems)
    harness.check(problems)


if __name__ == "__main__":
    main()
