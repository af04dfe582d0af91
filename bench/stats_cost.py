#!/usr/bin/env python3
"""What layerfs's always-on request statistics cost (layerctl stats).

The metadata workloads of overlay_bench (create 20,000 files, lstat them
cold, tar -x of /usr/include, unlink 20,000 lower files), on layerfs with
stats=1 (the default) and with stats=0, samples interleaved and the order
alternating, over a three-layer stack on a fresh loop-mounted ext4 (an
aged filesystem would hide the FUSE costs). Prints the medians and the
ratio stats=1 / stats=0: 1.02 means 2% slower with statistics, and under
each the samples' range and the ratio of the fastest samples, to tell a
cost from noise. Where the cost is smaller than the noise, the third line
bounds it without timing noise: the requests one more stats=1 run served
(its setup included), times what the timing wrapper costs per request
measured alone (bench/stats_record_cost, two threads contending for the
counters), as a share of the stats=0 median. Needs root.

  bench/stats_cost.py [--quick] [--samples 5] [--layerfs PATH] [--layerctl PATH]
                      [--record-cost PATH] [--dir DIR]
"""
import json
import os
import statistics
import subprocess
import sys

from bench_fs import fresh_ext4
from overlay_bench import (Bench, Scale, Target, make_files, sh, w_create, w_lstat,
                           w_tar_x, w_unlink, target_args)

WORKLOADS = [
    ("create 20,000 4 KiB files", w_create, False),
    ("lstat 20,000 lower files, cold", w_lstat, True),
    ("tar -x /usr/include", w_tar_x, False),
    ("unlink 20,000 lower files", w_unlink, False),
]
SETTINGS = [("stats=1", ("stats=1",)), ("stats=0", ("stats=0",))]


def served(target, layerctl, fn, s, cold):
    """The requests a stats=1 mount served for one run of `fn`."""
    def ask(*extra):
        return subprocess.run([layerctl, "stats", *extra, m], check=True,
                              capture_output=True, text=True).stdout
    with target.mounted(("stats=1",)) as m:
        ask("--reset")
        fn(m, s, cold)
        ops = json.loads(ask("--json"))["ops"]
    return sum(v["count"] for v in ops.values())


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for CI")
    p.add_argument("--samples", type=int, default=5)
    here = os.path.dirname(__file__)
    p.add_argument("--layerctl", default=os.path.join(here, "..", "build", "tools", "layerctl"))
    p.add_argument("--record-cost", default=os.path.join(here, "..", "build", "bench",
                                                         "stats_record_cost"),
                   help="the stats_record_cost program")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    s = Scale(args.quick)
    cost = json.loads(subprocess.run([args.record_cost], check=True, capture_output=True,
                                     text=True).stdout)
    ns = max(cost["ns_per_request"].values())
    print(f"timing wrapper alone: {cost['ns_per_request']['1']} ns per request on one "
          f"thread, {cost['ns_per_request']['2']} on two at once", flush=True)
    with fresh_ext4(args.dir, 2048) as fs:
        layers = [os.path.join(fs, n) for n in ("top", "mid", "bottom")]
        for d in layers:
            os.makedirs(d)
        make_files(os.path.join(layers[2], "many"), s.small, 100)
        Bench.tarball = os.path.join(fs, "include.tar")
        sh(f"tar -C /usr -cf {Bench.tarball} include")
        target = Target("layerfs", layers, fs, os.path.abspath(args.layerfs))
        print(f"{'workload (median seconds)':34} {'stats=1':>9} {'stats=0':>9} {'1/0':>7}",
              flush=True)
        for label, fn, cold in WORKLOADS:
            times = {name: [] for name, _ in SETTINGS}
            for i in range(args.samples):
                order = SETTINGS if i % 2 == 0 else SETTINGS[::-1]
                for name, extra in order:
                    with target.mounted(extra) as m:
                        times[name].append(fn(m, s, cold))
            on, off = (statistics.median(times[n]) for n, _ in SETTINGS)
            print(f"{label:34} {on:9.3f} {off:9.3f} {on / off:7.3f}", flush=True)
            # The spread of the samples: a ratio inside it is noise, not cost.
            lo_on, lo_off = (min(times[n]) for n, _ in SETTINGS)
            spread = "  ".join(f"{n} {min(times[n]):.3f}..{max(times[n]):.3f}"
                               for n, _ in SETTINGS)
            print(f"  {spread}  (fastest 1/0 {lo_on / lo_off:.3f})", flush=True)
            n = served(target, args.layerctl, fn, s, cold)
            print(f"  {n} requests x {ns} ns = {n * ns / 1e9:.4f} s: at most "
                  f"{100 * n * ns / 1e9 / off:.2f}% of stats=0's median", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
