"""The transport: /dev/fuse and FUSE over io_uring give the same results.

For each transport (io_uring=off, and io_uring=on with fuse's enable_uring
switched to Y for the run, then restored), against kernel overlayfs over
the same three-layer stack:
  - a seeded differential run, every outcome and the final trees equal;
  - set-id bits under FUSE_HANDLE_KILLPRIV_V2 (negotiated whenever the
    kernel offers it): a write, a truncate and an O_TRUNC open by a caller
    without CAP_FSETID clear set-uid, and set-gid where group execute is
    set; root keeps them; a chown clears them; a write removes
    security.capability. The modes and xattrs must match the kernel's;
  - layerctl stats names the transport: the rings served requests when
    io_uring is on, none when off;
  - the daemon exits 0 on unmount and on SIGTERM.
Then io_uring=on with enable_uring=N: the mount works over /dev/fuse.

  test_transport.py [--ops 1500] [--seed 21]
"""
import argparse
import json
import os
import signal
import struct
import subprocess

import differential
import harness
import stacks

ENABLE_URING = "/sys/module/fuse/parameters/enable_uring"
NOBODY = 65534
# A version-2 file capability (cap_net_raw, effective): what setcap writes.
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


class EnableUring:
    """Sets fuse's enable_uring for the body and always restores it."""

    def __init__(self, value):
        self.value, self.old = value, None

    def __enter__(self):
        if not os.path.exists(ENABLE_URING):
            return False
        with open(ENABLE_URING) as f:
            self.old = f.read().strip()
        try:
            with open(ENABLE_URING, "w") as f:
                f.write(self.value)
        except OSError:
            return False
        return True

    def __exit__(self, *exc):
        if self.old is not None:
            with open(ENABLE_URING, "w") as f:
                f.write(self.old)


def transport_of(mnt):
    r = subprocess.run([harness.LAYERCTL, "stats", "--json", mnt], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        return {"error": r.stderr.strip()}
    return json.loads(r.stdout).get("transport", {})


def prepare_setid(lower):
    """Files the set-id checks use, in the lower: owned by nobody."""
    d = os.path.join(lower, "setid")
    os.mkdir(d)
    os.chmod(d, 0o777)
    for name, mode in (("suid", 0o6775), ("sgid_x", 0o2775), ("sgid_nox", 0o2764),
                       ("trunc", 0o6775), ("otrunc", 0o6775), ("root", 0o6775),
                       ("chown", 0o6775), ("cap", 0o755)):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(b"data\n")
        os.chown(p, NOBODY, NOBODY)
        os.chmod(p, mode)
    os.setxattr(os.path.join(d, "cap"), "security.capability", CAPABILITY)


def setid_outcomes(mnt):
    """Runs the set-id changes on a mount; returns each file's mode and caps."""
    d = os.path.join(mnt, "setid")

    def as_nobody():
        done = []
        for name in ("suid", "sgid_x", "sgid_nox"):
            with open(os.path.join(d, name), "ab") as f:
                f.write(b"more\n")
        os.truncate(os.path.join(d, "trunc"), 2)
        os.close(os.open(os.path.join(d, "otrunc"), os.O_WRONLY | os.O_TRUNC))
        done.append("ok")
        return done

    out = {"nobody": harness.as_user(as_nobody, NOBODY)}
    with open(os.path.join(d, "root"), "ab") as f:
        f.write(b"root\n")
    os.chown(os.path.join(d, "chown"), NOBODY, 0)
    with open(os.path.join(d, "cap"), "ab") as f:
        f.write(b"x")
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        try:
            cap = os.getxattr(p, "security.capability").hex()
        except OSError as e:
            cap = f"errno {e.errno}"
        st = os.lstat(p)
        shown = subprocess.run(["stat", "-c", "%a", p], capture_output=True, text=True)
        out[name] = {"mode": oct(st.st_mode), "stat": shown.stdout.strip(),
                     "size": st.st_size, "cap": cap}
        os.utime(p, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000),
                 follow_symlinks=False)  # the later comparison of trees
    return out


def run_transport(tmp, lowers, label, options, expect_rings, args, problems):
    base = os.path.join(tmp, label)
    dirs = {n: os.path.join(base, n) for n in ("ku", "kw", "lu", "lw", "km", "lm")}
    for d in dirs.values():
        os.makedirs(d)
    for d in (tmp, base):  # nobody reaches the mounts
        os.chmod(d, 0o755)
    with harness.kernel_overlay(dirs["km"], lowers, dirs["ku"], dirs["kw"],
                                ["redirect_dir=on", "index=off", "metacopy=off"]), \
            harness.layerfs(dirs["lm"], lowers, dirs["lu"], dirs["lw"], options):
        expected, actual = setid_outcomes(dirs["km"]), setid_outcomes(dirs["lm"])
        if expected["nobody"] != ["ok"] or actual["nobody"] != ["ok"]:
            problems.append(f"{label}: the set-id changes by nobody failed: "
                            f"kernel {expected['nobody']}, layerfs {actual['nobody']}")
        for name in sorted(set(expected) | set(actual)):
            if expected.get(name) != actual.get(name):
                problems.append(f"{label}: setid/{name}: kernel {expected.get(name)}, "
                                f"layerfs {actual.get(name)}")
        mismatches, found = differential.run_both(dirs["km"], dirs["lm"], args.seed,
                                                  args.ops, label)
        problems += found
        problems += [f"{label}: {p}" for p in harness.compare(
            harness.snapshot(dirs["km"]), harness.snapshot(dirs["lm"]), "layerfs")]
        t = transport_of(dirs["lm"])
        print(f"{label}: {args.ops} ops, {mismatches} mismatches; transport {t}")
        if t.get("io_uring") != expect_rings:
            problems.append(f"{label}: transport {t}, rings expected: {expect_rings}")
        if expect_rings and not t.get("ring_requests"):
            problems.append(f"{label}: no request went through the rings")
        if not expect_rings and t.get("ring_requests"):
            problems.append(f"{label}: {t['ring_requests']} requests through rings that are off")
        if not t.get("killpriv_v2"):
            problems.append(f"{label}: KILLPRIV_V2 was not negotiated ({t})")
    # A SIGTERM ends the daemon cleanly with the rings running.
    with harness.layerfs(dirs["lm"], lowers, dirs["lu"], dirs["lw"], options,
                         stop_signal=signal.SIGTERM):
        os.listdir(dirs["lm"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    harness.start(900)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"), xattr_whiteouts=False)
        prepare_setid(lowers[0])
        with harness.lowers_unchanged(lowers, problems):
            run_transport(tmp, lowers, "dev", ["io_uring=off"], False, args, problems)
            with EnableUring("Y") as switched:
                if switched:
                    run_transport(tmp, lowers, "io_uring", ["io_uring=on"], True, args,
                                  problems)
                else:
                    print("io_uring: fuse's enable_uring cannot be set here; not run")
            with EnableUring("N"):
                mnt = os.path.join(tmp, "fallback")
                os.mkdir(mnt)
                with harness.layerfs(mnt, lowers, extra=["io_uring=on"]):
                    t = transport_of(mnt)
                    print(f"io_uring=on with enable_uring=N: transport {t}")
                    if t.get("io_uring") or "setid" not in os.listdir(mnt):
                        problems.append(f"fallback: transport {t}")
    harness.check(problems[:100])


if __name__ == "__main__":
    main()
