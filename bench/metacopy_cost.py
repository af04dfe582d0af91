#!/usr/bin/env python3
"""What metadata-only copy-up (metacopy=on) saves on chmod, chown and touch.

A lower tree of 128 dirs x 4 files x 1 MiB of non-zero data (512 MiB;
--quick: 1/32 of it) on a fresh loop-mounted ext4 (an aged filesystem
would blur the copy costs), mounted noinit_itable (the background
zeroing of inode tables slowed whichever workload ran first). Targets:
kernel overlayfs metacopy=on and metacopy=off, layerfs metacopy=on and
metacopy=off, fuse-overlayfs when installed, and the floor
(bench/floor_passthrough, a plain FUSE passthrough) over a plain copy of
the tree with sparse files: what any FUSE filesystem pays for these
requests with no layers and nothing to copy over /dev/fuse (the cost of
the copy-up work itself, and of the io_uring transport, is what
bench/metacopy_floor.py shows). Each sample of each workload
gets a fresh upper and work dir and drops the page, dentry and inode caches
first; the order of the targets rotates from sample to sample. Workloads:
`chmod -R g+w MNT`, `chown -R 1:1 MNT`, `find MNT -type f -exec touch {} +`
(touch opens each file O_WRONLY, so even the kernel with metacopy=on copies
the data), and the same with `touch -c` (no open: metadata only). Prints
the median seconds and the median growth of the upper (du -s -B1 after a
sync) per target, and the ratios layerfs metacopy=on / kernel metacopy=on,
floor / kernel metacopy=on and layerfs metacopy=on / floor.
No timing verdicts; exits 1 when a command fails, or when layerfs
metacopy=on grows the upper by 1 MiB or more (1/32 of that with --quick) on
a metadata-only workload. Needs root.

  bench/metacopy_cost.py [--quick] [--samples 3] [--layerfs PATH] [--floor PATH] [--dir DIR]
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

from bench_fs import fresh_ext4
from overlay_bench import MiB, Target, drop_caches, make_files, ratio, sh, target_args

# (label, Target name, mount options)
TARGETS = [
    ("kernel mc=on", "kernel", ("metacopy=on",)),
    ("kernel mc=off", "kernel", ("metacopy=off",)),
    ("layerfs mc=on", "layerfs", ("metacopy=on",)),
    ("layerfs mc=off", "layerfs", ("metacopy=off",)),
    ("fuse-overlayfs", "fuse-overlayfs", ()),
    ("floor", "floor", ()),
]
# (label, command on the mount, changes metadata only)
WORKLOADS = [
    ("chmod -R g+w", "chmod -R g+w {m}", True),
    ("chown -R 1:1", "chown -R 1:1 {m}", True),
    ("find -exec touch", "find {m} -type f -exec touch {{}} +", False),
    ("find -exec touch -c", "find {m} -type f -exec touch -c {{}} +", True),
]
ON, KERNEL_ON, FLOOR = "layerfs mc=on", "kernel mc=on", "floor"


def disk_bytes(path):
    out = subprocess.run(["du", "-s", "-B1", path], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def sample(target, extra, command):
    """(seconds, upper growth in bytes) of one run on a fresh mount; the
    floor has no upper (growth None)."""
    with target.mounted(extra) as m:
        upper = None if target.name == "floor" else os.path.join(os.path.dirname(m), "u")
        os.sync()
        before = disk_bytes(upper) if upper else 0
        drop_caches()
        t = time.perf_counter()
        sh(command.format(m=m))
        seconds = time.perf_counter() - t
        os.sync()
        return seconds, disk_bytes(upper) - before if upper else None


def make_flat(lower, flat):
    """The floor's tree: lower's dirs and names, each file sparse at its
    size (the workloads change metadata only, or open without reading)."""
    for dirpath, dirnames, filenames in os.walk(lower):
        here = os.path.join(flat, os.path.relpath(dirpath, lower))
        os.makedirs(here, exist_ok=True)
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            with open(os.path.join(here, n), "wb") as f:
                f.truncate(st.st_size)
            os.chmod(os.path.join(here, n), st.st_mode & 0o7777)


def kib(v):
    return "-" if v is None else f"{int(v) // 1024}K"


def print_table(title, rows, labels, fmt, pairs):
    """One row per workload; `pairs` (a, b, header) add the ratios a/b."""
    print(f"{title:24}" + "".join(f" {l:>15}" for l in labels)
          + "".join(f" {h:>14}" for _, _, h in pairs))
    for workload, med in rows:
        cells = "".join(f" {fmt(med.get(l)):>15}" for l in labels)
        ratios = "".join(f" {ratio(med[a], med[b]) if med.get(a) is not None and med.get(b) is not None else 'n/a':>14}"
                         for a, b, _ in pairs)
        print(f"{workload:24}{cells}{ratios}")


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1/32 of the tree, for CI")
    p.add_argument("--samples", type=int, default=3)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    scale = 32 if args.quick else 1
    dirs, bound = 128 // scale, MiB // scale
    floor = os.path.abspath(args.floor)
    present = {"fuse-overlayfs": bool(shutil.which("fuse-overlayfs")),
               "floor": os.access(floor, os.X_OK)}
    targets = [t for t in TARGETS if present.get(t[1], True)]
    labels = [label for label, _, _ in targets]
    if not present["fuse-overlayfs"]:
        print("note: fuse-overlayfs is not installed; left out")
    if not present["floor"]:
        print(f"note: no floor_passthrough at {floor}; the floor is left out")
    failures, times, growth = [], [], []
    with fresh_ext4(args.dir, 1024 if args.quick else 2048) as fs:
        lower = os.path.join(fs, "lower")
        for i in range(dirs):
            make_files(os.path.join(lower, f"d{i}"), 4, MiB)
        print(f"lower: {dirs * 4} files of 1 MiB in {dirs} dirs on a fresh ext4; "
              f"{args.samples} samples, medians", flush=True)
        flat = os.path.join(fs, "flat")
        make_flat(lower, flat)
        mounted = {label: Target(name, [lower], fs, os.path.abspath(args.layerfs),
                                 floor=floor, flat=flat, flat_links=False)
                   for label, name, _ in targets}
        for workload, command, metadata_only in WORKLOADS:
            secs, grew = {l: [] for l in labels}, {l: [] for l in labels}
            for i in range(args.samples):
                for label, _, extra in targets[i % len(targets):] + targets[:i % len(targets)]:
                    try:
                        s, g = sample(mounted[label], extra, command)
                    except (subprocess.CalledProcessError, RuntimeError) as e:
                        failures.append(f"{workload} on {label}: {e}")
                        continue
                    secs[label].append(s)
                    grew[label].append(g)
            if any(not secs[l] for l in labels):
                continue
            med_s = {l: statistics.median(v) for l, v in secs.items()}
            med_g = {l: statistics.median(v) if None not in v else None
                     for l, v in grew.items()}
            times.append((workload, med_s))
            growth.append((workload, med_g))
            print(f"{workload:24}" + "".join(f" {l} {med_s[l]:.3f}s/{kib(med_g[l])}"
                                             for l in labels), flush=True)
            if metadata_only and max(grew[ON]) >= bound:
                failures.append(f"{workload}: layerfs metacopy=on grew the upper by "
                                f"{max(grew[ON])} B, the bound is {bound} B")
    print()
    pairs = [(ON, KERNEL_ON, "l/k mc=on")]
    if FLOOR in labels:
        pairs += [(FLOOR, KERNEL_ON, "floor/k mc=on"), (ON, FLOOR, "l/floor")]
    print_table("seconds (median)", times, labels, lambda v: f"{v:.3f}", pairs)
    print_table("upper growth (KiB)", growth, labels, lambda v: "-" if v is None else f"{v / 1024:.0f}", pairs[:1])
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
