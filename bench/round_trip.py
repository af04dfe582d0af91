#!/usr/bin/env python3
"""The cost of one FUSE round trip: layerfs vs fuse-overlayfs.

Mounts a one-file lower under each FUSE target with timeout=0, so the kernel
asks the daemon on every lstat (a LOOKUP to revalidate the name, then a
GETATTR), and prints the median time of one lstat over several runs of
20,000. Kernel overlayfs is shown for scale (it caches, nothing to ask).
Needs root and fuse-overlayfs.

  bench/round_trip.py [--calls 20000] [--runs 5] [--layerfs PATH]
"""
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overlay_bench import Target, missing_prerequisite, target_args  # noqa: E402


def per_call_us(path, calls):
    os.lstat(path)
    t = time.perf_counter()
    for _ in range(calls):
        os.lstat(path)
    return (time.perf_counter() - t) / calls * 1e6


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    if why := missing_prerequisite():
        print(f"SKIP: {why}")
        return 77
    base = tempfile.mkdtemp(dir=args.dir, prefix="layerfs-rt-")
    try:
        lower = os.path.join(base, "lower")
        os.mkdir(lower)
        open(os.path.join(lower, "f"), "w").close()
        targets = [Target(n, [lower], base, os.path.abspath(args.layerfs))
                   for n in ("kernel", "fuse-overlayfs", "layerfs")]
        results = {t.name: [] for t in targets}
        for _ in range(args.runs):
            for t in targets:
                extra = () if t.name == "kernel" else ("timeout=0",)
                with t.mounted(extra) as m:
                    results[t.name].append(per_call_us(os.path.join(m, "f"), args.calls))
        print(f"lstat with timeout=0, median of {args.runs} runs of {args.calls:,} (µs per call)")
        for name, vals in results.items():
            print(f"{name:16} {statistics.median(vals):8.1f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
