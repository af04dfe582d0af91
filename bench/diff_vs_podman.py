#!/usr/bin/env python3
"""Bench: `layerctl diff` vs `podman diff` on the same container.

Builds a rootfs of FILES files (default 50,000) in DIRS directories, imports
it as a podman image (all podman state in a private temp dir: --root,
--runroot, --tmpdir; the host's storage is never touched), creates a
container, makes CHANGES changes through `podman mount` (a mix of appends to
image files, new files, deletions, chmods and a removed directory), then
times, each as the median of RUNS runs:
  - `podman diff CONTAINER`
  - `layerctl diff --lower LowerDir --upper UpperDir` (GraphDriver.Data)
and prints both times, the line counts (which must agree) and the ratio.

Usage (as root): bench/diff_vs_podman.py [--layerctl PATH] [--mount-program PATH]
    [--files N] [--changes N] [--runs N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, timeout=1800, **kw).stdout


def timed(cmd, runs):
    times, out = [], b""
    for _ in range(runs):
        t0 = time.perf_counter()
        out = run(cmd)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def build_rootfs(root, files, dirs):
    per_dir = max(1, files // dirs)
    n = 0
    for d in range(dirs):
        path = os.path.join(root, "usr", "share", f"pkg{d:04d}")
        os.makedirs(path)
        for f in range(per_dir):
            if n == files:
                break
            with open(os.path.join(path, f"file{f:04d}.txt"), "wb") as fh:
                fh.write(b"%d\n" % n * 8)
            n += 1
    return n


def make_changes(merged, files, dirs, changes):
    """`changes` user actions spread over the tree."""
    per_dir = max(1, files // dirs)
    made = 0
    kinds = ["append", "new", "delete", "chmod"]
    d = 0
    while made < changes - 1:
        pkg = os.path.join(merged, "usr", "share", f"pkg{d % dirs:04d}")
        kind = kinds[made % len(kinds)]
        f = (made // len(kinds)) % per_dir
        name = os.path.join(pkg, f"file{f:04d}.txt")
        if kind == "append":
            with open(name, "ab") as fh:
                fh.write(b"changed\n")
        elif kind == "new":
            with open(os.path.join(pkg, f"new{made:05d}.txt"), "wb") as fh:
                fh.write(b"new\n")
        elif kind == "delete":
            if os.path.exists(name):
                os.unlink(name)
        else:
            if os.path.exists(name):
                os.chmod(name, 0o600)
        made += 1
        d += 7
    shutil.rmtree(os.path.join(merged, "usr", "share", f"pkg{dirs - 1:04d}"))
    return made + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.path.join(os.path.dirname(here), "build")
    ap.add_argument("--layerctl", default=os.environ.get("LAYERCTL", os.path.join(build, "tools", "layerctl")))
    ap.add_argument("--mount-program", default=os.environ.get("LAYERFS", os.path.join(build, "fuse", "layerfs")),
                    help="podman's overlay.mount_program (layerfs or fuse-overlayfs)")
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--dirs", type=int, default=500)
    ap.add_argument("--changes", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("diff_vs_podman: needs root")
    for tool in ("podman", args.layerctl, args.mount_program):
        if not shutil.which(tool):
            sys.exit(f"diff_vs_podman: {tool} not found")
    mount_program = os.path.abspath(shutil.which(args.mount_program))
    tmp = tempfile.mkdtemp(prefix="layerfs-bench-diff-")
    podman = ["podman", "--root", f"{tmp}/root", "--runroot", f"{tmp}/runroot",
              "--tmpdir", f"{tmp}/tmp", "--storage-driver", "overlay",
              "--storage-opt", f"overlay.mount_program={mount_program}",
              "--events-backend", "none", "--cgroup-manager", "cgroupfs"]
    try:
        rootfs = os.path.join(tmp, "rootfs")
        count = build_rootfs(rootfs, args.files, args.dirs)
        run(["tar", "-C", rootfs, "-cf", f"{tmp}/rootfs.tar", "."])
        shutil.rmtree(rootfs)
        run(podman + ["import", "-q", f"{tmp}/rootfs.tar", "localhost/bench-diff:1"])
        run(podman + ["create", "--name", "bench", "--network", "none",
                      "localhost/bench-diff:1", "/bin/true"])
        merged = run(podman + ["mount", "bench"]).decode().strip()
        changes = make_changes(merged, count, args.dirs, args.changes)
        data = json.loads(run(podman + ["inspect", "bench", "--format",
                                        "{{json .GraphDriver.Data}}"]))
        version = run(["podman", "--version"]).decode().strip()
        t_podman, out_podman = timed(podman + ["diff", "bench"], args.runs)
        t_ours, out_ours = timed([args.layerctl, "diff", "--lower", data["LowerDir"],
                                  "--upper", data["UpperDir"]], args.runs)
        n_podman = len(out_podman.splitlines())
        n_ours = len(out_ours.splitlines())
        same = sorted(out_podman.splitlines()) == sorted(out_ours.splitlines())
        print(f"layerctl diff vs podman diff: one container, rootfs of {count:,} files "
              f"in {args.dirs} dirs, {changes:,} changes")
        print(f"  ({version}, overlay mount_program={os.path.basename(mount_program)}, "
              f"median of {args.runs} runs each)")
        print(f"  podman diff   : {t_podman:8.3f} s  {n_podman:,} lines")
        print(f"  layerctl diff : {t_ours:8.3f} s  {n_ours:,} lines")
        print(f"  same lines    : {'yes' if same else 'NO'}")
        print(f"  ratio         : layerctl diff is {t_podman / t_ours:.1f}x faster")
        return 0 if same else 1
    finally:
        subprocess.run(podman + ["umount", "-a"], capture_output=True, timeout=120)
        subprocess.run(podman + ["rm", "-af"], capture_output=True, timeout=120)
        subprocess.run(podman + ["system", "reset", "-f"], capture_output=True, timeout=300)
        with open("/proc/self/mountinfo") as f:
            stale = [l.split()[4] for l in f if f" {tmp}/" in l]
        for m in sorted(stale, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
