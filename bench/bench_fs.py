"""The scratch filesystem of the benchmarks: a fresh ext4 on a loop device.

An aged filesystem (fragmented free space, long-lived inode tables, a busy
journal) blurs the FUSE costs the benchmarks measure, so they make their
trees on a new one. Needs root.
"""
import contextlib
import os
import shutil
import subprocess
import tempfile

IMAGE = "fs.img"  # the image's name, beside the mount point


def image_of(mnt):
    """The image file behind a mount point made by fresh_ext4."""
    return os.path.join(os.path.dirname(mnt), IMAGE)


@contextlib.contextmanager
def fresh_ext4(where, size_mib, inodes=None):
    """A new ext4 of size_mib MiB (a sparse image under `where`, `inodes`
    inodes when given, else mkfs's default of one per 16 KiB), loop-mounted
    for the body, which gets the mount point; then unmounted and deleted,
    also when the body fails. Mounted noinit_itable: the background zeroing
    of inode tables would slow whichever workload runs first."""
    base = tempfile.mkdtemp(dir=where, prefix="layerfs-ext4-")
    image, mnt = os.path.join(base, IMAGE), os.path.join(base, "fs")
    os.mkdir(mnt)
    try:
        with open(image, "wb") as f:
            f.truncate(size_mib << 20)
        mkfs = ["mkfs.ext4", "-q", "-F"] + (["-N", str(inodes)] if inodes else []) + [image]
        subprocess.run(mkfs, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["mount", "-o", "loop,noinit_itable", image, mnt], check=True)
        try:
            yield mnt
        finally:
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["umount", "-l", mnt], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)
