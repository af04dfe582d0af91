#!/usr/bin/env python3
"""layerctl commit/apply against GNU tar on the same large upper dir.

Builds an upper of >= 1 GiB in >= 50,000 files (a few large files, many
small ones, half random and half repetitive bytes so that compressors do
real work), then times, warm cache, best of --runs:
  commit:  layerctl commit --upper U -o OUT --compress C
           vs  tar -C U -cf - . | C > OUT     (C: none, gzip, zstd)
  apply:   layerctl apply OUT DIR    vs  tar -C DIR -xf OUT (-z/--zstd)
and prints each pair's times and the ratio layerctl/tar (goal <= 1.2).
layerctl also hashes the stream twice (DiffID, digest) and fsyncs its
output before renaming it into place; tar does neither.

  bench/commit_apply_bench.py [--layerctl PATH] [--quick] [--runs N] [--dir D]
                              [--upper EXISTING_UPPER] [--only commit|apply]
                              [--compress none,gzip,zstd]
--quick: 5,000 files, ~64 MiB (a CI-size smoke run of the same steps).
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time


def build_upper(root, files, large_files, large_size, small_max):
    rnd = random.Random(5)
    # Longer than the repetitive half of any block written below.
    filler = b"layerfs commit bench: the quick brown fox jumps over the lazy dog\n" * 16384
    total = 0
    os.makedirs(root)
    for i in range(large_files):
        d = os.path.join(root, "big", f"d{i % 8}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"blob{i}.bin"), "wb") as f:
            left = large_size
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n // 2) + filler[: n - n // 2])
                left -= n
        assert os.path.getsize(os.path.join(d, f"blob{i}.bin")) == large_size
        total += large_size
    for i in range(files - large_files):
        d = os.path.join(root, "small", f"d{i // 500}")
        if i % 500 == 0:
            os.makedirs(d, exist_ok=True)
        n = rnd.randrange(0, small_max)
        with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
            f.write(os.urandom(n // 2) + filler[: n - n // 2])
        total += n
    return total


def timed(cmd, shell=False):
    t = time.monotonic()
    subprocess.run(cmd, shell=shell, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def best(runs, fn, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        times.append(fn())
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layerctl", default=os.path.join(os.path.dirname(__file__), "..",
                                                       "build", "tools", "layerctl"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to build the trees (default: $TMPDIR)")
    ap.add_argument("--compress", default="none,gzip,zstd",
                    help="comma-separated subset of none,gzip,zstd")
    ap.add_argument("--only", choices=("commit", "apply"), default=None,
                    help="time only commit or only apply")
    ap.add_argument("--upper", default=None,
                    help="use this existing upper instead of building one")
    args = ap.parse_args()
    layerctl = os.path.abspath(args.layerctl)
    if args.quick:
        files, large, large_size, small_max = 5_000, 4, 8 << 20, 12_000
    else:
        files, large, large_size, small_max = 50_000, 48, 16 << 20, 16_000
    base = tempfile.mkdtemp(prefix="layerfs-bench-", dir=args.dir)
    try:
        if args.upper:
            upper = os.path.abspath(args.upper)
        else:
            upper = os.path.join(base, "upper")
            build_upper(upper, files, large, large_size, small_max)
        nfiles, size = 0, 0
        for dirpath, _, names in os.walk(upper):
            nfiles += len(names)
            size += sum(os.lstat(os.path.join(dirpath, n)).st_size for n in names)
        print(f"upper: {nfiles} files, {size / 2**30:.2f} GiB in {base}; best of {args.runs} "
              f"run(s), warm cache, {os.cpu_count()} CPUs")
        subprocess.run(["tar", "-C", upper, "-cf", "/dev/null", "."], check=True)  # warm
        rows = []
        for comp, ext, pipe, xflag in (("none", "tar", "", []),
                                       ("gzip", "tar.gz", "| gzip -c", ["-z"]),
                                       ("zstd", "tar.zst", "| zstd -q -c", ["--zstd"])):
            if comp not in args.compress.split(","):
                continue
            ours_out = os.path.join(base, "ours." + ext)
            tar_out = os.path.join(base, "tar." + ext)
            t_ours = best(args.runs, lambda: timed([layerctl, "commit", "--quiet", "--upper", upper,
                                                    "--compress", comp, "-o", ours_out]))
            if pipe:
                t_tar = best(args.runs, lambda: timed(
                    f"tar -C '{upper}' -cf - . {pipe} > '{tar_out}'", shell=True))
            else:
                t_tar = best(args.runs, lambda: timed(["tar", "-C", upper, "-cf", tar_out, "."]))
            if args.only != "apply":
                rows.append((f"commit {comp}", t_ours, t_tar))
            out_dir = os.path.join(base, "applied")

            def clean():
                shutil.rmtree(out_dir, ignore_errors=True)
                subprocess.run(["sync"], check=True)

            def tar_x():
                os.makedirs(out_dir)
                return timed(["tar", "-C", out_dir, *xflag, "-xf", tar_out])

            if args.only != "commit":
                t_apply = best(args.runs, lambda: timed([layerctl, "apply", "--quiet", ours_out,
                                                         out_dir]), clean)
                t_tarx = best(args.runs, tar_x, clean)
                clean()
                rows.append((f"apply {comp}", t_apply, t_tarx))
            os.unlink(ours_out)
            os.unlink(tar_out)
        print(f"{'operation':<14} {'layerctl s':>10} {'tar s':>8} {'ratio':>6}")
        for name, ours, tar in rows:
            print(f"{name:<14} {ours:>10.2f} {tar:>8.2f} {ours / tar:>6.2f}")
        worst = max(o / t for _, o, t in rows)
        print(f"worst ratio layerctl/tar: {worst:.2f} (goal <= 1.20)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
