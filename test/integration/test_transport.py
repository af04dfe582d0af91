"""The transport: /dev/fuse, FUSE over io_uring and passthrough give the
same results.

For each transport (io_uring=off; io_uring=on with fuse's enable_uring
switched to Y for the run, then restored; passthrough=on, where the kernel
reads and writes upper files itself), against kernel overlayfs over the
same three-layer stack:
  - a seeded differential run, every outcome and the final trees equal;
  - set-id bits, under FUSE_HANDLE_KILLPRIV_V2 where it is negotiated (not
    with passthrough, where the kernel clears them itself): a write, a truncate and an O_TRUNC open by a caller
    without CAP_FSETID clear set-uid, and set-gid where group execute is
    set; root keeps them; a chown clears them; a write removes
    security.capability. The modes and xattrs must match the kernel's;
  - layerctl stats names the transport: the rings served requests when
    io_uring is on, none when off;
  - open files the kernel's rules make hard to pass through give what
    kernel overlayfs gives: a read-only fd of a lower file held while a
    writer copies it up (it must see the new data), two fds and a mapping
    of one upper file, an overlay mounted on the mount (stack depth);
  - reading a lower file sends READ requests (it stays cached on a writable
    mount), and with passthrough=on, none on a read-only mount;
  - layerctl stats names the transport and counts passthrough opens; the
    growth of a file written through passthrough shows in layerctl top;
  - the daemon exits 0 on unmount and on SIGTERM.
Then io_uring=on with enable_uring=N: the mount works over /dev/fuse.

  test_transport.py [--ops 1500] [--seed 21]
"""
import argparse
import json
import mmap
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


def prepare_open_files(lower):
    """Lower files the open-file checks use."""
    d = os.path.join(lower, "opens")
    os.mkdir(d)
    for name in ("held", "shared", "nested"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"old\n")
    with open(os.path.join(d, "read"), "wb") as f:
        f.write(os.urandom(256 << 10))


def open_file_outcomes(mnt, tmp):
    """What reads through open files and an overlay on `mnt` see."""
    d = os.path.join(mnt, "opens")
    out = {}
    # A reader of the lower file, then a writer that copies it up.
    with open(os.path.join(d, "held"), "rb") as reader:
        out["held_before"] = reader.read().decode()
        with open(os.path.join(d, "held"), "ab") as writer:
            writer.write(b"new\n")
        reader.seek(0)
        out["held_after"] = reader.read().decode()
    # Two fds and a mapping of one upper file.
    with open(os.path.join(d, "shared"), "r+b") as writer:
        writer.write(b"abc")
        writer.flush()
        with open(os.path.join(d, "shared"), "rb") as reader:
            out["shared_read"] = reader.read().decode()
            with mmap.mmap(reader.fileno(), 0, prot=mmap.PROT_READ) as m:
                out["shared_map"] = m[:].decode()
        writer.seek(0, os.SEEK_END)
        writer.write(b"x" * 70000)
        out["shared_size"] = os.fstat(writer.fileno()).st_size
    with open(os.path.join(d, "shared"), "rb") as again:
        out["shared_again"] = len(again.read())
    # An overlay with this mount as its lower layer.
    top = os.path.join(tmp, "on_top")
    dirs = [os.path.join(top, n) for n in ("m", "u", "w")]
    for x in dirs:
        os.makedirs(x)
    with harness.kernel_overlay(dirs[0], [d], dirs[1], dirs[2]):
        with open(os.path.join(dirs[0], "nested"), "ab") as f:
            f.write(b"top\n")
        with open(os.path.join(dirs[0], "nested"), "rb") as f:
            out["nested"] = f.read().decode()
    with open(os.path.join(d, "nested"), "rb") as f:
        out["nested_below"] = f.read().decode()
    return out


def read_requests(mnt):
    r = subprocess.run([harness.LAYERCTL, "stats", "--json", mnt], capture_output=True,
                       text=True, timeout=60, check=True)
    return json.loads(r.stdout)["ops"].get("read", {}).get("count", 0)


def lower_reads(mnt, problems, label, expect_passed):
    """Whether reading a lower file sent READ requests: none when the kernel
    reads it itself (passthrough=on), some otherwise."""
    before = read_requests(mnt)
    with open(os.path.join(mnt, "opens", "read"), "rb") as f:
        f.read()
    sent = read_requests(mnt) - before
    if (sent == 0) != expect_passed:
        problems.append(f"{label}: reading a lower file sent {sent} READ requests")


def passthrough_growth(mnt, problems, label):
    """A passthrough writer's growth shows in layerctl top while it writes."""
    with open(os.path.join(mnt, "opens", "growing"), "wb") as f:
        f.write(b"g" * (1 << 20))
        f.flush()
        os.fsync(f.fileno())  # out of the writeback cache, where there is one
        growth = json.loads(os.getxattr(mnt, "user.layerfs.growth"))
    grown = {p["path"]: p["bytes"] for p in growth["paths"]}.get("/opens/growing", 0)
    if grown < (1 << 20):
        problems.append(f"{label}: /opens/growing grew {grown} bytes while open, not 1 MiB")


def read_only_passthrough(tmp, lowers, problems):
    """Without an upper dir every open passes through: the kernel reads the
    lower files itself, and they read as under kernel overlayfs."""
    km, lm = os.path.join(tmp, "ro_k"), os.path.join(tmp, "ro_l")
    for d in (km, lm):
        os.mkdir(d)
    with harness.kernel_overlay(km, lowers), \
            harness.layerfs(lm, lowers, extra=["passthrough=on"]):
        lower_reads(lm, problems, "read-only", True)
        problems += [f"read-only: {p}" for p in harness.compare(
            harness.snapshot(km), harness.snapshot(lm), "layerfs")]
        t = transport_of(lm)
        print(f"read-only passthrough: transport {t}")
        if not t.get("passthrough_opens"):
            problems.append(f"read-only: no open passed through ({t})")


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


def run_transport(tmp, lowers, label, options, expect, args, problems):
    """`expect`: {"io_uring": bool, "passthrough": bool}, what stats must say."""
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
        expected.update(open_file_outcomes(dirs["km"], os.path.join(base, "k")))
        actual.update(open_file_outcomes(dirs["lm"], os.path.join(base, "l")))
        # before the differential run, which may remove /opens
        passthrough_growth(dirs["lm"], problems, label)
        lower_reads(dirs["lm"], problems, label, False)
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
        for key in ("io_uring", "passthrough"):
            if t.get(key) != expect[key]:
                problems.append(f"{label}: transport {t}, {key} expected: {expect[key]}")
        if expect["io_uring"] != bool(t.get("ring_requests")):
            problems.append(f"{label}: {t.get('ring_requests')} requests through the rings")
        if expect["passthrough"] != bool(t.get("passthrough_opens")):
            problems.append(f"{label}: {t.get('passthrough_opens')} passthrough opens")
        # Passthrough leaves set-id clearing to the kernel (transport.h).
        if t.get("killpriv_v2") == expect["passthrough"]:
            problems.append(f"{label}: KILLPRIV_V2 {t.get('killpriv_v2')} ({t})")
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
        prepare_open_files(lowers[0])
        with harness.lowers_unchanged(lowers, problems):
            run_transport(tmp, lowers, "dev", ["io_uring=off", "passthrough=off"],
                          {"io_uring": False, "passthrough": False}, args, problems)
            if harness.kernel_at_least(6, 9):
                run_transport(tmp, lowers, "passthrough", ["io_uring=off", "passthrough=on"],
                              {"io_uring": False, "passthrough": True}, args, problems)
                read_only_passthrough(tmp, lowers, problems)
            else:
                print("passthrough: needs kernel 6.9; not run")
            with EnableUring("Y") as switched:
                if switched:
                    run_transport(tmp, lowers, "io_uring", ["io_uring=on", "passthrough=off"],
                                  {"io_uring": True, "passthrough": False}, args, problems)
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
