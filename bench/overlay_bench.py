#!/usr/bin/env python3
"""layerfs vs fuse-overlayfs vs kernel overlayfs, side by side.

Mounts the same three-layer stack under each target, fresh for every sample,
runs each workload on each target (samples interleaved), and prints one
table: the median time per target and the ratios layerfs/kernel and
layerfs/fuse-overlayfs (below 1.00 means layerfs is faster). "cold" drops
the page, dentry and inode caches before the timed part; "warm" reads or
walks the same data before it (file data twice). Each sample starts after a
sync, and the order of the targets rotates from sample to sample. Needs root.

  bench/overlay_bench.py [--quick] [--samples 3] [--layerfs PATH] [--dir DIR]
"""
import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20


class Scale:
    def __init__(self, quick):
        f = 50 if quick else 1
        self.big = (1024 // f) * MiB          # sequential read / write
        self.copy_up = (256 // f) * MiB       # first write to a lower file
        self.small = 20000 // f               # create / lstat / unlink
        self.wide = 10000 // f                # merged dir entries
        self.tree = 50000 // f                # find + du
        self.huge = 0 if quick else 1_000_000  # peak RSS of a find
        self.huge_dir = 100000 // f
        self.fio_size = (256 // f) * MiB


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, **kw)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def write_random(path, size):
    with open(path, "wb") as f:
        block = random.Random(1).randbytes(MiB)
        for _ in range(size // MiB):
            f.write(block)


def make_files(d, n, size=0, prefix="f"):
    os.makedirs(d, exist_ok=True)
    data = b"x" * size
    for i in range(n):
        with open(os.path.join(d, f"{prefix}{i}"), "wb") as f:
            f.write(data)


def build_stack(base, s):
    """Three lowers (top first) holding every workload's input."""
    top, mid, bottom = (os.path.join(base, n) for n in ("top", "mid", "bottom"))
    for d in (top, mid, bottom):
        os.makedirs(d, exist_ok=True)
    write_random(os.path.join(bottom, "big"), s.big)
    write_random(os.path.join(bottom, "copyup"), s.copy_up)
    write_random(os.path.join(bottom, "fio"), s.fio_size)
    make_files(os.path.join(bottom, "many"), s.small, 100)
    third = s.wide // 3
    for i, layer in enumerate((top, mid, bottom)):
        make_files(os.path.join(layer, "wide"), third + (s.wide % 3 if i == 0 else 0),
                   prefix=f"l{i}-")
    per = 500
    for i in range(s.tree):
        d = os.path.join((top, mid, bottom)[i % 3], "tree", f"d{i // per}", f"s{i % 10}")
        if i < per * 3 or i % per < 30:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.write(b"y" * (i % 4096))
    make_files(os.path.join(bottom, "hugedir"), s.huge_dir)
    if s.huge:
        for i in range(s.huge):
            d = os.path.join(bottom, "huge", f"d{i // 1000}")
            if i % 1000 == 0:
                os.makedirs(d)
            os.close(os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_WRONLY, 0o644))
    return [top, mid, bottom]


class Target:
    def __init__(self, name, lowers, work_base, layerfs):
        self.name, self.lowers, self.base, self.layerfs = name, lowers, work_base, layerfs
        self.pid = None

    @contextlib.contextmanager
    def mounted(self, extra=()):
        root = tempfile.mkdtemp(dir=self.base, prefix=self.name + "-")
        u, w, m = (os.path.join(root, x) for x in ("u", "w", "m"))
        for d in (u, w, m):
            os.mkdir(d)
        opts = f"lowerdir={':'.join(self.lowers)},upperdir={u},workdir={w}"
        if extra:
            opts += "," + ",".join(extra)
        proc = None
        if self.name == "kernel":
            sh(f"mount -t overlay overlay -o {opts} {m}")
        else:
            prog = self.layerfs if self.name == "layerfs" else "fuse-overlayfs"
            proc = subprocess.Popen([prog, "-f", "-o", opts, m], stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not os.path.ismount(m):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not mount")
                time.sleep(0.01)
        self.pid = proc.pid if proc else None
        os.sync()  # the previous sample's cleanup must not be timed here
        try:
            yield m
        finally:
            subprocess.run(["umount", m], check=False)
            if os.path.ismount(m):
                subprocess.run(["umount", "-l", m], check=False)
            if proc:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            shutil.rmtree(root, ignore_errors=True)

    def peak_rss_kib(self):
        if not self.pid:
            return None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None


# --- workloads: each takes (mount, scale, cold) and returns seconds ----------

def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def warm_up(path):
    # Twice: the second pass makes the pages active on the LRU, as the lower
    # file's own pages already are (every target's daemon reads them).
    for _ in range(2):
        sh(f"cat {path} > /dev/null")


def prepare(cold, warm):
    """Before the timed part: empty caches when cold, else `warm()`."""
    if cold:
        drop_caches()
    else:
        warm()


def w_seq_read(m, s, cold):
    prepare(cold, lambda: warm_up(f"{m}/big"))
    return timed(lambda: sh(f"dd if={m}/big of=/dev/null bs=1M"))


def w_seq_write(m, s, cold):
    return timed(lambda: sh(f"dd if=/dev/zero of={m}/new bs=1M count={s.big // MiB} conv=fsync"))


def w_copy_up(m, s, cold):
    def first_write():
        fd = os.open(f"{m}/copyup", os.O_WRONLY)
        os.pwrite(fd, b"!", 0)
        os.close(fd)
    return timed(first_write)


def w_create(m, s, cold):
    d = f"{m}/created"
    os.mkdir(d)
    data = b"z" * 4096

    def run():
        for i in range(s.small):
            fd = os.open(f"{d}/{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, data)
            os.close(fd)
    return timed(run)


def w_lstat(m, s, cold):
    names = [f"{m}/many/f{i}" for i in range(s.small)]
    prepare(cold, lambda: [os.lstat(n) for n in names])
    return timed(lambda: [os.lstat(n) for n in names])


def w_readdir(m, s, cold):
    prepare(cold, lambda: os.listdir(f"{m}/wide"))
    return timed(lambda: sh(f"ls -f {m}/wide | wc -l"))


def w_tar_x(m, s, cold):
    os.mkdir(f"{m}/inc")
    return timed(lambda: sh(f"tar -C {m}/inc -xf {Bench.tarball}"))


def w_find_du(m, s, cold):
    walk = f"find {m}/tree > /dev/null; du -s {m}/tree"
    prepare(cold, lambda: sh(walk))
    return timed(lambda: sh(walk))


def w_fio(m, s, cold):
    prepare(cold, lambda: warm_up(f"{m}/fio"))
    cmd = (f"fio --name=rr --filename={m}/fio --rw=randread --bs=4k --size={s.fio_size} "
           f"--io_size={min(s.fio_size, 64 * MiB)} --ioengine=psync --direct=0 "
           f"--randrepeat=1 --readonly --output=/dev/null")
    return timed(lambda: sh(cmd))


def w_unlink(m, s, cold):
    names = [f"{m}/many/f{i}" for i in range(s.small)]
    for n in names:
        os.lstat(n)
    return timed(lambda: [os.unlink(n) for n in names])


class Bench:
    tarball = None


WORKLOADS = [
    ("seq read 1 GiB lower, cold", w_seq_read, True),
    ("seq read 1 GiB lower, warm", w_seq_read, False),
    ("seq write 1 GiB + fsync", w_seq_write, False),
    ("first write to 256 MiB lower (copy-up)", w_copy_up, False),
    ("copy-up, volatile (no fsync)", w_copy_up, False, ("volatile",)),
    ("create 20,000 4 KiB files", w_create, False),
    ("lstat 20,000 lower files, cold", w_lstat, True),
    ("lstat 20,000 lower files, warm", w_lstat, False),
    ("readdir 10,000 entries / 3 layers, cold", w_readdir, True),
    ("readdir 10,000 entries / 3 layers, warm", w_readdir, False),
    ("tar -x /usr/include", w_tar_x, False),
    ("find + du 50,000 files, cold", w_find_du, True),
    ("find + du 50,000 files, warm", w_find_du, False),
    ("fio 4 KiB random read, cold", w_fio, True),
    ("fio 4 KiB random read, warm", w_fio, False),
    ("unlink 20,000 lower files", w_unlink, False),
]


def rss_workloads(targets, s):
    rows = []
    cases = [(f"peak RSS: ls of a {s.huge_dir:,}-entry dir", "ls -f {m}/hugedir > /dev/null")]
    if s.huge:
        cases.insert(0, (f"peak RSS: find over {s.huge:,} files", "find {m}/huge > /dev/null"))
    for label, cmd in cases:
        vals = {}
        for t in targets:
            if t.name == "kernel":
                continue
            with t.mounted() as m:
                drop_caches()
                sh(cmd.format(m=m))
                vals[t.name] = t.peak_rss_kib()
        rows.append((label, vals))
    return rows


def target_args(description):
    """The options every side-by-side program takes: which layerfs, where."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--layerfs", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                     "fuse", "layerfs"))
    p.add_argument("--dir", default="/var/tmp", help="where the stack and mounts are made")
    return p


def missing_prerequisite():
    """Why the targets cannot all be mounted here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("fuse-overlayfs"):
        return "fuse-overlayfs is not installed"
    return None


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for CI")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--only", default="", help="run workloads whose name contains this")
    args = p.parse_args()
    if why := missing_prerequisite():
        print(f"SKIP: {why}")
        return 77
    s = Scale(args.quick)
    base = tempfile.mkdtemp(dir=args.dir, prefix="layerfs-bench-")
    try:
        t0 = time.monotonic()
        lowers = build_stack(os.path.join(base, "layers"), s)
        Bench.tarball = os.path.join(base, "include.tar")
        sh(f"tar -C /usr -cf {Bench.tarball} include")
        print(f"stack built in {time.monotonic() - t0:.0f}s "
              f"({'quick' if args.quick else 'full'} sizes, {args.samples} samples)", flush=True)
        names = ["kernel", "fuse-overlayfs", "layerfs"]
        targets = [Target(n, lowers, base, os.path.abspath(args.layerfs)) for n in names]
        results = []
        for label, fn, cold, *extra in WORKLOADS:
            if args.only and args.only not in label:
                continue
            times = {n: [] for n in names}
            for i in range(args.samples):
                # interleaved, and rotated so no target always runs right
                # after the same other one
                for t in targets[i % 3:] + targets[:i % 3]:
                    with t.mounted(*extra) as m:
                        times[t.name].append(fn(m, s, cold))
            med = {n: statistics.median(v) for n, v in times.items()}
            results.append((label, med))
            print_row(label, med, flush=True)
        rss = [] if args.only else rss_workloads(targets, s)
        print()
        print_table(results, rss)
    finally:
        for m in [l.split()[4] for l in open("/proc/self/mountinfo") if base in l]:
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


def ratio(a, b):
    return f"{a / b:6.2f}" if b else "   n/a"


def print_row(label, med, flush=False):
    print(f"{label:44} {med['kernel']:9.3f} {med['fuse-overlayfs']:9.3f} {med['layerfs']:9.3f}"
          f"   {ratio(med['layerfs'], med['kernel'])}   {ratio(med['layerfs'], med['fuse-overlayfs'])}",
          flush=flush)


def print_table(results, rss):
    print(f"{'workload (median seconds)':44} {'kernel':>9} {'fuse-ovl':>9} {'layerfs':>9}"
          f"   {'l/kern':>6}   {'l/fuse':>6}")
    for label, med in results:
        print_row(label, med)
    for label, vals in rss:
        l, f = vals.get("layerfs"), vals.get("fuse-overlayfs")
        print(f"{label:44} {'-':>9} {f / 1024:8.1f}M {l / 1024:8.1f}M   {'':6}   {ratio(l, f)}")


if __name__ == "__main__":
    sys.exit(main())
