"""Differential test against kernel overlayfs (redirect_dir=on).

For each seed: the same random sequence of operations (at least 5,000) runs
on a kernel overlayfs mount and a layerfs mount over one three-layer stack,
each with its own upper. Every outcome must match, then the final trees
(type, mode, owner, size, mtime, symlink target, xattrs, content, names),
and the lowers must be unchanged. Then the two uppers are swapped: layerfs's
upper under kernel overlayfs and the kernel's upper under layerfs must show
the same view again (interop both ways).

  test_differential.py [--seeds 1,2,3] [--ops 5000]
"""
import argparse
import os

import differential
import harness
import stacks

KERNEL_OPTS = ["redirect_dir=on", "index=off", "metacopy=off"]


def run_seed(tmp, lowers, seed, ops, problems):
    base = os.path.join(tmp, f"seed{seed}")
    dirs = {n: os.path.join(base, n) for n in ("ku", "kw", "lu", "lw", "km", "lm")}
    for d in dirs.values():
        os.makedirs(d)
    with harness.kernel_overlay(dirs["km"], lowers, dirs["ku"], dirs["kw"], KERNEL_OPTS), \
            harness.layerfs(dirs["lm"], lowers, dirs["lu"], dirs["lw"]):
        mismatches, found = differential.run_both(dirs["km"], dirs["lm"], seed, ops,
                                                  f"seed {seed}")
        problems += found
        expected = harness.snapshot(dirs["km"])
        actual = harness.snapshot(dirs["lm"])
        problems += [f"seed {seed}: {p}" for p in harness.compare(expected, actual, "layerfs")]
    print(f"seed {seed}: {ops} ops, {mismatches} outcome mismatches, {len(expected)} entries")
    # Interop: each upper under the other implementation.
    for d in ("km", "lm"):
        os.rmdir(dirs[d])
        os.mkdir(dirs[d])
    with harness.kernel_overlay(dirs["km"], lowers, dirs["lu"], dirs["lw"], KERNEL_OPTS):
        crossed = harness.snapshot(dirs["km"])
    problems += [f"seed {seed} (layerfs upper under kernel): {p}"
                 for p in harness.compare(expected, crossed, "kernel view of layerfs upper")]
    with harness.layerfs(dirs["lm"], lowers, dirs["ku"], dirs["kw"]):
        crossed = harness.snapshot(dirs["lm"])
    problems += [f"seed {seed} (kernel upper under layerfs): {p}"
                 for p in harness.compare(expected, crossed, "layerfs view of kernel upper")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default=os.environ.get("LAYERFS_SEEDS", "1,2,3"))
    parser.add_argument("--ops", type=int, default=5000)
    args = parser.parse_args()
    harness.start(1500)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"), xattr_whiteouts=False)
        with harness.lowers_unchanged(lowers, problems):
            for seed in (int(s) for s in args.seeds.split(",")):
                run_seed(tmp, lowers, seed, args.ops, problems)
    harness.check(problems[:200])


if __name__ == "__main__":
    main()
