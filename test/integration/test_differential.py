"""Differential test against kernel overlayfs (redirect_dir=on).

For each seed: the same random sequence of operations (at least 5,000) runs
on a kernel overlayfs mount and a layerfs mount over one three-layer stack,
each with its own upper. Every outcome must match, then the final trees
(type, mode, owner, size, mtime, symlink target, xattrs, content, names),
and the lowers must be unchanged. Then the two uppers are swapped: layerfs's
upper under kernel overlayfs and the kernel's upper under layerfs must show
the same view again (interop both ways).

One more seed runs with layerfs's own features on, metacopy=on and a
quota (against kernel overlayfs with metacopy=on): they must change no
outcome, and the quota's count of the upper (the daemon's) must equal
`layerctl size`'s walk at the end.

  test_differential.py [--seeds 1,2,3] [--ops 5000] [--feature-seed 4]
"""
import argparse
import json
import os
import subprocess

import differential
import harness
import stacks

KERNEL_OPTS = ["redirect_dir=on", "index=off", "metacopy=off"]
FEATURES = {"kernel": ["redirect_dir=on", "index=off", "metacopy=on"],
            "layerfs": ["metacopy=on", "quota=1G"]}


def quota_agrees(mnt, problems, label):
    """The daemon's running count equals layerctl size's walk of the upper."""
    live = json.loads(os.getxattr(mnt, "user.layerfs.quota"))
    r = subprocess.run([harness.LAYERCTL, "size", "--json", mnt], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        problems.append(f"{label}: layerctl size failed: {r.stderr.strip()}")
        return
    walked = json.loads(r.stdout)["QuotaUsed"]
    print(f"{label}: quota use {live['used']} of {live['limit']}, walk {walked}")
    if live["used"] != walked:
        problems.append(f"{label}: the daemon counts {live['used']} bytes, the walk {walked}")


def run_seed(tmp, lowers, seed, ops, problems, features=False):
    base = os.path.join(tmp, f"seed{seed}")
    dirs = {n: os.path.join(base, n) for n in ("ku", "kw", "lu", "lw", "km", "lm")}
    for d in dirs.values():
        os.makedirs(d)
    kernel_opts = FEATURES["kernel"] if features else KERNEL_OPTS
    layerfs_opts = FEATURES["layerfs"] if features else []
    with harness.kernel_overlay(dirs["km"], lowers, dirs["ku"], dirs["kw"], kernel_opts), \
            harness.layerfs(dirs["lm"], lowers, dirs["lu"], dirs["lw"], layerfs_opts):
        mismatches, found = differential.run_both(dirs["km"], dirs["lm"], seed, ops,
                                                  f"seed {seed}")
        problems += found
        if features:
            quota_agrees(dirs["lm"], problems, f"seed {seed}")
        expected = harness.snapshot(dirs["km"])
        actual = harness.snapshot(dirs["lm"])
        problems += [f"seed {seed}: {p}" for p in harness.compare(expected, actual, "layerfs")]
    what = " (" + ",".join(layerfs_opts) + ")" if features else ""
    print(f"seed {seed}{what}: {ops} ops, {mismatches} outcome mismatches, "
          f"{len(expected)} entries")
    # Interop: each upper under the other implementation.
    for d in ("km", "lm"):
        os.rmdir(dirs[d])
        os.mkdir(dirs[d])
    with harness.kernel_overlay(dirs["km"], lowers, dirs["lu"], dirs["lw"], kernel_opts):
        crossed = harness.snapshot(dirs["km"])
    problems += [f"seed {seed} (layerfs upper under kernel): {p}"
                 for p in harness.compare(expected, crossed, "kernel view of layerfs upper")]
    with harness.layerfs(dirs["lm"], lowers, dirs["ku"], dirs["kw"], layerfs_opts):
        crossed = harness.snapshot(dirs["lm"])
    problems += [f"seed {seed} (kernel upper under layerfs): {p}"
                 for p in harness.compare(expected, crossed, "layerfs view of kernel upper")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default=os.environ.get("LAYERFS_SEEDS", "1,2,3"))
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--feature-seed", type=int, default=4,
                        help="the seed run with metacopy=on and a quota (0: none)")
    args = parser.parse_args()
    harness.start(1500)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"), xattr_whiteouts=False)
        with harness.lowers_unchanged(lowers, problems):
            for seed in (int(s) for s in args.seeds.split(",")):
                run_seed(tmp, lowers, seed, args.ops, problems)
            if args.feature_seed:
                run_seed(tmp, lowers, args.feature_seed, args.ops, problems, features=True)
    harness.check(problems[:200])


if __name__ == "__main__":
    main()
