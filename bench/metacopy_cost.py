#!/usr/bin/env python3
"""What metadata-only copy-up (metacopy=on) saves on chmod, chown and touch.

A lower tree of 128 dirs x 4 files x 1 MiB of non-zero data (512 MiB;
--quick: 1/32 of it) on a fresh loop-mounted ext4 (an aged filesystem
would blur the copy costs), mounted noinit_itable (the background
zeroing of inode tables slowed whichever workload ran first). Targets:
kernel overlayfs metacopy=on and metacopy=off, layerfs metacopy=on and
metacopy=off, fuse-overlayfs when installed. Each sample of each workload
gets a fresh upper and work dir and drops the page, dentry and inode caches
first; the order of the targets rotates from sample to sample. Workloads:
`chmod -R g+w MNT`, `chown -R 1:1 MNT`, `find MNT -type f -exec touch {} +`
(touch opens each file O_WRONLY, so even the kernel with metacopy=on copies
the data), and the same with `touch -c` (no open: metadata only). Prints
the median seconds and the median growth of the upper (du -s -B1 after a
sync) per target, and the ratios layerfs metacopy=on / kernel metacopy=on.
No timing verdicts; exits 1 when a command fails, or when layerfs
metacopy=on grows the upper by 1 MiB or more (1/32 of that with --quick) on
a metadata-only workload. Needs root.

  bench/metacopy_cost.py [--quick] [--samples 3] [--layerfs PATH] [--dir DIR]
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
]
# (label, command on the mount, changes metadata only)
WORKLOADS = [
    ("chmod -R g+w", "chmod -R g+w {m}", True),
    ("chown -R 1:1", "chown -R 1:1 {m}", True),
    ("find -exec touch", "find {m} -type f -exec touch {{}} +", False),
    ("find -exec touch -c", "find {m} -type f -exec touch -c {{}} +", True),
]
ON, KERNEL_ON = "layerfs mc=on", "kernel mc=on"


def disk_bytes(path):
    out = subprocess.run(["du", "-s", "-B1", path], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def sample(target, extra, command):
    """(seconds, upper growth in bytes) of one run on a fresh mount."""
    with target.mounted(extra) as m:
        upper = os.path.join(os.path.dirname(m), "u")
        os.sync()
        before = disk_bytes(upper)
        drop_caches()
        t = time.perf_counter()
        sh(command.format(m=m))
        seconds = time.perf_counter() - t
        os.sync()
        return seconds, disk_bytes(upper) - before


def print_table(title, rows, labels, fmt):
    print(f"{title:24}" + "".join(f" {l:>15}" for l in labels) + f" {'l/k mc=on':>10}")
    for workload, med in rows:
        cells = "".join(f" {fmt(med[l]):>15}" for l in labels)
        print(f"{workload:24}{cells} {ratio(med[ON], med[KERNEL_ON]):>10}")


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
    targets = [t for t in TARGETS if t[1] != "fuse-overlayfs" or shutil.which("fuse-overlayfs")]
    labels = [label for label, _, _ in targets]
    if len(targets) < len(TARGETS):
        print("note: fuse-overlayfs is not installed; left out")
    failures, times, growth = [], [], []
    with fresh_ext4(args.dir, 1024 if args.quick else 2048) as fs:
        lower = os.path.join(fs, "lower")
        for i in range(dirs):
            make_files(os.path.join(lower, f"d{i}"), 4, MiB)
        print(f"lower: {dirs * 4} files of 1 MiB in {dirs} dirs on a fresh ext4; "
              f"{args.samples} samples, medians", flush=True)
        mounted = {label: Target(name, [lower], fs, os.path.abspath(args.layerfs))
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
            med_g = {l: statistics.median(v) for l, v in grew.items()}
            times.append((workload, med_s))
            growth.append((workload, med_g))
            print(f"{workload:24}" + "".join(f" {l} {med_s[l]:.3f}s/{int(med_g[l]) // 1024}K"
                                             for l in labels), flush=True)
            if metadata_only and max(grew[ON]) >= bound:
                failures.append(f"{workload}: layerfs metacopy=on grew the upper by "
                                f"{max(grew[ON])} B, the bound is {bound} B")
    print()
    print_table("seconds (median)", times, labels, lambda v: f"{v:.3f}")
    print_table("upper growth (KiB)", growth, labels, lambda v: f"{v / 1024:.0f}")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
