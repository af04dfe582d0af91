#!/usr/bin/env python3
"""How fast a metadata-only chmod through layerfs can be: its two halves.

A chmod of a lower file under metacopy=on is one FUSE round trip plus the
daemon's work: a metadata-only copy-up in kernel overlayfs's on-disk format
(an unnamed file in the work dir, its size, xattrs, origin and metacopy
markers and times, linked into the upper, the parent's times restored),
then the chmod. This program times the halves apart, per file, warm (each
name stat'ed first), over N empty-data 1 MiB files in one directory on a
fresh loop-mounted ext4. Each of bench/metacopy_work's runs makes two
passes: the first over files only in the lower, the second over the same
files, now in the upper (nothing to copy up).

  kernel           kernel overlayfs metacopy=on: the whole chmod, copy-up
                   included (metacopy_work chmod on the mount, first pass)
  work             layerfs's setattr handler called directly, no FUSE, on
                   lower files: the copy-up and the chmod
                   (metacopy_work setattr, first pass)
  work, no copy    the same, second pass
  mount            a chmod through a layerfs mount (metacopy=on) of lower
                   files, first pass: the real thing
  mount, no copy   the same, second pass: the round trip and the work

Per transport (/dev/fuse; io_uring when fuse's enable_uring can be set,
set back after), the round trip is `mount, no copy` - `work, no copy`, and
a chmod through layerfs costs at least `work` + that round trip: when
`work` alone is near `kernel`, no transport makes layerfs as fast as the
kernel without doing less work on disk. Prints medians and the ratios to
`kernel`; no timing verdicts. Exits 1 when a command fails or a daemon
does not exit 0. Needs root.

  bench/metacopy_floor.py [--quick] [--files 2000] [--samples 5]
                          [--layerfs PATH] [--work-program PATH] [--dir DIR]
"""
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench_fs import fresh_ext4
from overlay_bench import MiB, Target, target_args, uring_enabled


def run_work(program, *args):
    """The µs per file of each pass that bench/metacopy_work reports."""
    out = subprocess.run([program, *args], check=True, capture_output=True, text=True,
                         timeout=600)
    return json.loads(out.stdout)["us_per_file"]


def make_files(d, n):
    """d/f0 .. d/f(n-1), each 1 MiB of hole (a metadata-only copy-up never
    reads the data)."""
    os.makedirs(d)
    for i in range(n):
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.truncate(MiB)


def on_mount(program, target, extra, n):
    """metacopy_work chmod's two passes on a fresh mount of target."""
    with target.mounted(extra) as m:
        return run_work(program, "chmod", m, str(n))


def handler_alone(program, base, lower, n):
    """metacopy_work setattr's two passes, with a fresh upper and work dir."""
    with tempfile.TemporaryDirectory(dir=base) as root:
        u, w = os.path.join(root, "u"), os.path.join(root, "w")
        os.mkdir(u)
        os.mkdir(w)
        return run_work(program, "setattr", lower, u, w, str(n))


def main():
    p = target_args(__doc__.splitlines()[0])
    p.add_argument("--work-program", default=os.path.join(
        os.path.dirname(__file__), "..", "build", "bench", "metacopy_work"))
    p.add_argument("--quick", action="store_true", help="200 files, for CI")
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--samples", type=int, default=5)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    for prog in (args.layerfs, args.work_program):
        if not os.access(prog, os.X_OK):
            print(f"error: {prog} is not an executable (build it, or give its path)")
            return 1
    n = 200 if args.quick else args.files
    with contextlib.ExitStack() as cleanup:
        transports = ["off"]
        old, why = cleanup.enter_context(uring_enabled())
        if why:
            print(f"note: io_uring left out: {why}")
        else:
            transports.append("on")
        fs = cleanup.enter_context(fresh_ext4(args.dir, 1024))
        lower = os.path.join(fs, "lower")
        make_files(lower, n)
        kernel_fs = Target("kernel", [lower], fs, os.path.abspath(args.layerfs))
        layerfs = Target("layerfs", [lower], fs, os.path.abspath(args.layerfs),
                         options=("metacopy=on",))
        # A run's two passes: (its first pass's row, its second pass's row).
        runs = {("kernel", None): lambda: on_mount(args.work_program, kernel_fs,
                                                   ("metacopy=on",), n),
                ("work", "work, no copy"): lambda: handler_alone(args.work_program, fs,
                                                                 lower, n)}
        for t in transports:
            runs[(f"mount ({t})", f"mount, no copy ({t})")] = \
                lambda t=t: on_mount(args.work_program, layerfs, (f"io_uring={t}",), n)
        names = [row for pair in runs for row in pair if row]
        got = {name: [] for name in names}
        print(f"kernel {os.uname().release}; {n} files in one dir on a fresh ext4; "
              f"{args.samples} samples, medians; io_uring=on is FUSE over io_uring", flush=True)
        try:
            order = list(runs)
            for i in range(args.samples):  # the order rotates from sample to sample
                for pair in order[i % len(order):] + order[:i % len(order)]:
                    for row, us in zip(pair, runs[pair]()):
                        if row:
                            got[row].append(us)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as e:
            print(f"FAIL: {e}")
            return 1
        if layerfs.notes:
            print(f"FAIL: layerfs {'; '.join(layerfs.notes)}")
            return 1
        med = {name: statistics.median(v) for name, v in got.items()}
        kernel = med["kernel"]
        print(f"{'us per chmod (median)':34} {'us':>8} {'/kernel':>8}")
        for name in names:
            print(f"{name:34} {med[name]:8.1f} {med[name] / kernel:8.2f}")
        for t in transports:
            trip = med[f"mount, no copy ({t})"] - med["work, no copy"]
            bound = med["work"] + trip
            print(f"io_uring={t}: round trip {trip:.1f} us; work + round trip = "
                  f"{bound:.1f} us = {bound / kernel:.2f}x kernel; measured "
                  f"{med[f'mount ({t})'] / kernel:.2f}x")
        if old is not None and old != "Y" and not why:
            print(f"fuse enable_uring was {old}; set back after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
