"""Shared pieces of the commit/apply tests: running layerctl, parsing its
digests, and comparing views at the commit format's whole-second mtimes.
"""
import os
import subprocess

import harness


def layerctl(*args, check=True):
    """Runs layerctl; returns its stdout as {key: value} lines."""
    r = subprocess.run([harness.LAYERCTL, *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise RuntimeError(f"layerctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    out["_rc"], out["_stderr"] = r.returncode, r.stderr
    return out


def in_seconds(snap):
    """A snapshot with mtimes cut to whole seconds, as a layer tar holds them."""
    out = {}
    for p, d in snap.items():
        d = dict(d)
        d["mtime_ns"] = d["mtime_ns"] // 1_000_000_000 * 1_000_000_000
        out[p] = d
    return out


def without_root(snap):
    """The root's own attributes belong to the unpacker (umoci, podman)."""
    return {p: d for p, d in snap.items() if p != "."}


def kernel_stack(tmp):
    """The kernel-form three-layer stack of stacks.py as (upper, lowers)."""
    import stacks
    top, mid, bottom = stacks.build_kernel_form(os.path.join(tmp, "layers"))
    return top, [mid, bottom]


def merged_view(tmp, upper, lowers):
    """The kernel overlayfs view of lowers + upper: the oracle.

    The upper is mounted as the topmost lower: the same union rules, and the
    kernel honours xattr whiteouts only in lower layers.
    """
    mnt = os.path.join(tmp, "oracle")
    os.makedirs(mnt, exist_ok=True)
    with harness.kernel_overlay(mnt, [upper] + lowers):
        return harness.snapshot(mnt)
