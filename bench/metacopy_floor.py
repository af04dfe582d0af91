#!/usr/bin/env python3
"""How fast a metadata-only chmod through layerfs can be: its two halves.

A chmod of a lower file under metacopy=on is one FUSE round trip plus the
daemon's work: a metadata-only copy-up in kernel overlayfs's on-disk format
(an unnamed file in the work dir, its size, xattrs, origin and metacopy
markers and times, linked into the upper, the parent's times restored),
then the chmod. This program times the halves apart, per file, warm (each
name stat'ed first), over N empty-data 1 MiB files in one directory on a
fresh loop-mounted ext4:

  kernel           kernel overlayfs metacopy=on: the whole chmod, copy-up
                   included (bench/metacopy_work chmod on the mount)
  work             layerfs's setattr handler called directly, no FUSE, on
                   lower files: the copy-up and the chmod
                   (bench/metacopy_work setattr)
  work, no copy    the same handler on files already in the upper
  mount, no copy   a chmod through a layerfs mount whose upper already
                   holds the files: the round trip and the work, no copy-up
  mount            a chmod through a layerfs mount (metacopy=on) of lower
                   files: the real thing

Per transport (/dev/fuse; io_uring when fuse's enable_uring can be set,
set back after), the round trip is `mount, no copy` - `work, no copy`, and
a chmod through layerfs costs at least `work` + that round trip: when
`work` alone is near `kernel`, no transport makes layerfs as fast as the
kernel without doing less work on disk. Prints medians and the ratios to
`kernel`; no timing verdicts. Exits 1 when a command fails. Needs root.

  bench/metacopy_floor.py [--quick] [--files 2000] [--samples 5]
                          [--layerfs PATH] [--work-program PATH] [--dir DIR]
"""
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_fs import fresh_ext4
from overlay_bench import MiB, target_args, unmount_and_wait, uring_enabled


def run_work(program, *args):
    """us per file that bench/metacopy_work reports."""
    out = subprocess.run([program, *args], check=True, capture_output=True, text=True,
                         timeout=600)
    return json.loads(out.stdout)["us_per_file"]


def make_files(d, n):
    os.makedirs(d)
    for i in range(n):
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.truncate(MiB)


@contextlib.contextmanager
def fresh_dirs(base, *names):
    """New empty dirs under base for one sample, removed after."""
    root = tempfile.mkdtemp(dir=base, prefix="s-")
    paths = [os.path.join(root, n) for n in names]
    for p in paths:
        os.mkdir(p)
    try:
        yield paths
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mounted(argv, mnt, daemon):
    """The mount that argv makes at mnt (a daemon staying in the
    foreground when `daemon`, its stderr kept beside mnt), unmounted after,
    also when the body fails."""
    log = os.path.join(os.path.dirname(mnt), "stderr")
    proc = None
    if daemon:
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, stderr=err)
    else:
        subprocess.run(argv, check=True)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if (proc and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not mount {mnt}")
            time.sleep(0.01)
        yield mnt
    finally:
        unmount_and_wait(mnt, proc)
    if proc and proc.returncode != 0:
        with open(log, errors="replace") as f:
            said = f.read().strip()
        raise RuntimeError(f"{argv[0]} exited with status {proc.returncode}: {said}")


def kernel_chmod(args, base, lower, n):
    with fresh_dirs(base, "u", "w", "m") as (u, w, m):
        opts = f"lowerdir={lower},upperdir={u},workdir={w},metacopy=on"
        with mounted(["mount", "-t", "overlay", "overlay", "-o", opts, m], m, False):
            return run_work(args.work_program, "chmod", m, str(n))


def work(args, base, lower, n, copied):
    """The setattr handler alone, over lower files or (copied) upper ones."""
    with fresh_dirs(base, "u", "w", "empty") as (u, w, empty):
        if copied:
            os.rmdir(u)
            make_files(u, n)
        return run_work(args.work_program, "setattr", empty if copied else lower, u, w, str(n))


def mount_chmod(args, base, lower, n, copied, transport):
    with fresh_dirs(base, "u", "w", "m", "empty") as (u, w, m, empty):
        if copied:
            os.rmdir(u)
            make_files(u, n)
        opts = (f"lowerdir={empty if copied else lower},upperdir={u},workdir={w},"
                f"metacopy=on,io_uring={transport}")
        with mounted([args.layerfs, "-f", "-o", opts, m], m, True):
            return run_work(args.work_program, "chmod", m, str(n))


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
        base = os.path.join(fs, "samples")
        os.mkdir(base)
        rows = {"kernel": lambda: kernel_chmod(args, base, lower, n),
                "work": lambda: work(args, base, lower, n, False),
                "work, no copy": lambda: work(args, base, lower, n, True)}
        for t in transports:
            rows[f"mount, no copy ({t})"] = lambda t=t: mount_chmod(args, base, lower, n, True, t)
            rows[f"mount ({t})"] = lambda t=t: mount_chmod(args, base, lower, n, False, t)
        names = list(rows)
        got = {name: [] for name in names}
        print(f"kernel {os.uname().release}; {n} files in one dir on a fresh ext4; "
              f"{args.samples} samples, medians; io_uring=on is FUSE over io_uring", flush=True)
        try:
            for i in range(args.samples):  # the order rotates from sample to sample
                for name in names[i % len(names):] + names[:i % len(names)]:
                    got[name].append(rows[name]())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as e:
            print(f"FAIL: {e}")
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
