#!/usr/bin/env python3
"""layerfs vs fuse-overlayfs vs kernel overlayfs, side by side.

Mounts the same three-layer stack under each target, fresh for every sample,
runs each workload on each target (samples interleaved), and prints one
table: the median time per target and the ratios of layerfs to the others
(below 1.00 means layerfs is faster). The targets: kernel overlayfs,
fuse-overlayfs, the floor, layerfs over /dev/fuse (io_uring=off,
passthrough=off), layerfs+uring (io_uring=on, with fuse's enable_uring set
to Y for the run and set back after) and layerfs+pass (passthrough=on: the
reads and writes of upper files go straight to them, no writeback cache).
The floor is bench/floor_passthrough, a plain FUSE passthrough of one
directory holding the tree the stack shows (copied once out of a kernel
overlay of the lowers, without the huge tree only the RSS rows use, which
the floor is not in; hard-linked afresh for each sample): what FUSE costs
with no layering. Workloads that write into a lower file
(copy-up) would change the shared inodes there and mean nothing without
layers, so the floor shows '-' for them.

"cold" drops the page, dentry and inode caches before the timed part;
"warm" reads or walks the same data before it (file data twice). Each
sample starts after a sync, and the order of the targets rotates from
sample to sample. Everything is made on a fresh loop-mounted ext4 in --dir
(8 GiB, 2 GiB with --quick) unless --no-fresh-ext4. Exits 1 when a sample
fails (its cell says "fail"). Needs root.

  bench/overlay_bench.py [--quick] [--samples 3] [--layerfs PATH] [--floor PATH]
      [--dir DIR] [--no-fresh-ext4] [--targets kernel,fuse-overlayfs,...]
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

from bench_fs import fresh_ext4, image_of

MiB = 1 << 20
# every target, in the order of the table
TARGETS = ["kernel", "fuse-overlayfs", "floor", "layerfs", "layerfs+uring", "layerfs+pass"]
URING_PARAM = "/sys/module/fuse/parameters/enable_uring"


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


def build_flat(lowers, base):
    """The floor's tree: the merged view of `lowers` as one plain directory,
    copied out of a read-only kernel overlay of them, without "huge"."""
    merged, flat = os.path.join(base, "flat-merged"), os.path.join(base, "flat")
    os.mkdir(merged)
    os.mkdir(flat)
    sh(f"mount -t overlay overlay -o lowerdir={':'.join(lowers)} {merged}")
    try:
        for name in os.listdir(merged):
            if name != "huge":
                sh(f"cp -a {merged}/{name} {flat}/")
    finally:
        subprocess.run(["umount", merged], check=False)
        os.rmdir(merged)
    return flat


class Target:
    """One filesystem under test, mounted afresh by mounted(). `options` go
    to every mount of it; `floor` and `flat` are the floor's program and the
    tree it serves a hard-linked copy of (a full copy with `flat_links`
    false, for workloads that change metadata, which links would share)."""

    def __init__(self, name, lowers, work_base, layerfs, options=(), floor=None, flat=None,
                 flat_links=True):
        self.name, self.lowers, self.base, self.layerfs = name, lowers, work_base, layerfs
        self.options, self.floor, self.flat = tuple(options), floor, flat
        self.flat_links = flat_links
        self.pid = None
        self.notes = []  # what the daemon said when it was not as asked

    def command(self, root, m, extra):
        """The daemon's command line, after making what it serves in root."""
        if self.name == "floor":  # extra mount options are the stack's, not the floor's
            src = os.path.join(root, "src")
            sh(f"cp -a{'l' if self.flat_links else ''} {self.flat} {src}")
            return [self.floor, src, m, "-f"]
        u, w = (os.path.join(root, x) for x in ("u", "w"))
        for d in (u, w):
            os.mkdir(d)
        opts = ",".join([f"lowerdir={':'.join(self.lowers)},upperdir={u},workdir={w}",
                         *self.options, *extra])
        if self.name == "kernel":
            return ["mount", "-t", "overlay", "overlay", "-o", opts, m]
        prog = "fuse-overlayfs" if self.name == "fuse-overlayfs" else self.layerfs
        return [prog, "-f", "-o", opts, m]

    @contextlib.contextmanager
    def mounted(self, extra=()):
        root = tempfile.mkdtemp(dir=self.base, prefix=self.name + "-")
        m = os.path.join(root, "m")
        os.mkdir(m)
        proc, log = None, os.path.join(root, "stderr")
        try:
            cmd = self.command(root, m, extra)
            if self.name == "kernel":
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            else:
                with open(log, "wb") as err:
                    proc = subprocess.Popen(cmd, stderr=err)
                deadline = time.monotonic() + 30
                while not os.path.ismount(m):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name} did not mount")
                    time.sleep(0.01)
            self.pid = proc.pid if proc else None
            os.sync()  # the previous sample's cleanup must not be timed here
            yield m
        finally:
            subprocess.run(["umount", m], check=False, stderr=subprocess.DEVNULL)
            if os.path.ismount(m):
                subprocess.run(["umount", "-l", m], check=False)
            if proc:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.check_exit(proc.returncode, log)
            shutil.rmtree(root, ignore_errors=True)

    def check_exit(self, status, log):
        with open(log, errors="replace") as f:
            said = f.read().splitlines()
        if status != 0:
            self.note(f"exited with status {status}" + (f": {said[-1]}" if said else ""))
        # io_uring=on and passthrough=on say so when they cannot be had
        refusal = {"layerfs+uring": "serving /dev/fuse", "layerfs+pass": "is cached"}
        for line in said:
            if self.name in refusal and refusal[self.name] in line:
                self.note(line)

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

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


# Workloads that write into a lower file: not run on the floor, whose files
# are hard links shared by every sample (and which has no copy-up).
WRITES_INTO_LOWER = {w_copy_up}


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
            if t.name in ("kernel", "floor"):
                continue
            with t.mounted() as m:
                drop_caches()
                sh(cmd.format(m=m))
                vals[t.name] = t.peak_rss_kib()
        rows.append((label, vals))
    return rows


def target_args(description):
    """The options every side-by-side program takes: which layerfs and
    floor, where."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--layerfs", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                     "fuse", "layerfs"))
    p.add_argument("--floor", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                   "bench", "floor_passthrough"),
                   help="the floor_passthrough program")
    p.add_argument("--dir", default="/var/tmp", help="where the stack and mounts are made")
    return p


def missing_prerequisite(fuse_overlayfs=True):
    """Why the targets cannot all be mounted here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if fuse_overlayfs and not shutil.which("fuse-overlayfs"):
        return "fuse-overlayfs is not installed"
    return None


@contextlib.contextmanager
def uring_enabled():
    """fuse's enable_uring set to Y for the body, and back after. Yields the
    value it had (None if there is none) and why it is not Y, or None."""
    try:
        with open(URING_PARAM) as f:
            old = f.read().strip()
    except OSError as e:
        yield None, f"no {URING_PARAM} ({e.strerror}; FUSE over io_uring is Linux 6.14+)"
        return
    if old == "Y":
        yield old, None
        return
    try:
        with open(URING_PARAM, "w") as f:
            f.write("Y\n")
    except OSError as e:
        yield old, f"cannot set {URING_PARAM} to Y: {e.strerror}"
        return
    try:
        yield old, None
    finally:
        with open(URING_PARAM, "w") as f:
            f.write(old + "\n")


def remove_all(base):
    """Unmounts whatever is still mounted under base, then deletes it."""
    for m in [l.split()[4] for l in open("/proc/self/mountinfo") if base in l]:
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(base, ignore_errors=True)


def fs_type(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for CI")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--only", default="", help="run workloads whose name contains this")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"which targets, comma-separated (default: {','.join(TARGETS)})")
    p.add_argument("--fresh-ext4", action=argparse.BooleanOptionalAction, default=True,
                   help="make everything on a new loop-mounted ext4 in --dir (default: on)")
    args = p.parse_args()
    asked = [n for n in args.targets.split(",") if n]
    if unknown := [n for n in asked if n not in TARGETS]:
        p.error(f"unknown target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    names = [n for n in TARGETS if n in asked]
    if why := missing_prerequisite("fuse-overlayfs" in names):
        print(f"SKIP: {why}")
        return 77
    floor = os.path.abspath(args.floor)
    if "floor" in names and not os.access(floor, os.X_OK):
        print(f"error: no floor_passthrough at {floor} (build it, or give --floor PATH)")
        return 1
    s = Scale(args.quick)
    with contextlib.ExitStack() as cleanup:
        notes = [f"kernel {os.uname().release}"]
        if "layerfs+uring" in names:
            old, why = cleanup.enter_context(uring_enabled())
            if why:
                names.remove("layerfs+uring")
                notes.append(f"l+uring n/a: {why}")
            else:
                notes.append("fuse enable_uring=Y" + ("" if old == "Y" else
                                                     f" (was {old}, set back after)"))
        if args.fresh_ext4:
            fs = cleanup.enter_context(fresh_ext4(args.dir, (2 if args.quick else 8) << 10,
                                                  inodes=None if args.quick else 2_000_000))
            where = f"on a fresh loop-mounted ext4 ({image_of(fs)})"
        else:
            fs = args.dir
            where = f"in {fs} ({fs_type(fs)}, not a fresh filesystem)"
        base = tempfile.mkdtemp(dir=fs, prefix="layerfs-bench-")
        cleanup.callback(remove_all, base)
        t0 = time.monotonic()
        lowers = build_stack(os.path.join(base, "layers"), s)
        flat = build_flat(lowers, base) if "floor" in names else None
        Bench.tarball = os.path.join(base, "include.tar")
        sh(f"tar -C /usr -cf {Bench.tarball} include")
        print(f"stack built in {time.monotonic() - t0:.0f}s "
              f"({'quick' if args.quick else 'full'} sizes, {args.samples} samples)", flush=True)
        options = {"layerfs": ("io_uring=off", "passthrough=off"),
                   "layerfs+uring": ("io_uring=on", "passthrough=off"),
                   "layerfs+pass": ("io_uring=off", "passthrough=on")}
        targets = [Target(n, lowers, base, os.path.abspath(args.layerfs), options.get(n, ()),
                          floor, flat) for n in names]
        results, failures = [], []
        for label, fn, cold, *extra in WORKLOADS:
            if args.only and args.only not in label:
                continue
            runs = [t for t in targets if t.name != "floor" or fn not in WRITES_INTO_LOWER]
            times = {t.name: [] for t in runs}
            for i in range(args.samples):
                # interleaved, and rotated so no target always runs right
                # after the same other one
                k = i % len(runs)
                for t in runs[k:] + runs[:k]:
                    try:
                        with t.mounted(*extra) as m:
                            times[t.name].append(fn(m, s, cold))
                    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                        failures.append(f"{label} on {t.name}: {e}")
            med = {t.name: None for t in targets}  # None: not run for this workload
            med.update({n: statistics.median(v) if v else "fail" for n, v in times.items()})
            results.append((label, med))
            print_row(label, med, flush=True)
        rss = [] if args.only else rss_workloads(targets, s)
        print()
        print(f"{where}; {'; '.join(notes)}")
        print_table(results, rss)
        for t in targets:
            for n in t.notes:
                print(f"note: {t.name}: {n}")
        for f in failures:
            print(f"FAIL: {f}")
    return 1 if failures else 0


# (heading, target) of the time columns, and (heading, numerator, denominator)
# of the ratio columns
COLUMNS = [("kernel", "kernel"), ("fuse-ovl", "fuse-overlayfs"), ("floor", "floor"),
           ("layerfs", "layerfs"), ("l+uring", "layerfs+uring"), ("l+pass", "layerfs+pass")]
RATIOS = [("l/kern", "layerfs", "kernel"), ("l/fuse", "layerfs", "fuse-overlayfs"),
          ("l/floor", "layerfs", "floor"), ("u/floor", "layerfs+uring", "floor"),
          ("u/kern", "layerfs+uring", "kernel"), ("u/fuse", "layerfs+uring", "fuse-overlayfs"),
          ("p/kern", "layerfs+pass", "kernel"), ("p/fuse", "layerfs+pass", "fuse-overlayfs"),
          ("p/l", "layerfs+pass", "layerfs")]


def ratio(a, b):
    return f"{a / b:6.2f}" if b else "   n/a"


def cell(med, name):
    """A median in seconds; n/a for a target not in the run, - for one not
    run on this workload."""
    v = med.get(name, "n/a")
    return f"{v:9.3f}" if isinstance(v, float) else f"{v if v else '-':>9}"


def ratio_cell(med, a, b):
    va, vb = med.get(a), med.get(b)
    if isinstance(va, float) and isinstance(vb, float):
        return f"{ratio(va, vb):>7}"
    return f"{'-' if a in med and b in med else 'n/a':>7}"


def print_row(label, med, flush=False):
    times = " ".join(cell(med, name) for _, name in COLUMNS)
    ratios = " ".join(ratio_cell(med, a, b) for _, a, b in RATIOS)
    print(f"{label:44} {times}  {ratios}", flush=flush)


def print_table(results, rss):
    print(f"{'workload (median seconds)':44} " + " ".join(f"{h:>9}" for h, _ in COLUMNS)
          + "  " + " ".join(f"{h:>7}" for h, _, _ in RATIOS))
    for label, med in results:
        print_row(label, med)
    for label, vals in rss:
        mib = " ".join(f"{vals[n] / 1024:8.1f}M" if vals.get(n) else f"{'-':>9}"
                       for _, n in COLUMNS)
        f = vals.get("fuse-overlayfs")
        ratios = " ".join(f"{ratio(vals[a], f):>7}" if b == "fuse-overlayfs" and vals.get(a) and f
                          else f"{'':7}" for _, a, b in RATIOS)
        print(f"{label:44} {mib}  {ratios}".rstrip())


if __name__ == "__main__":
    sys.exit(main())
