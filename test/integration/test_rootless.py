"""Rootless: layerfs run by an unprivileged user, against kernel overlayfs
mounted with userxattr (the kernel's unprivileged form).

Everything happens in a private mount namespace made by this test: there a
0666 node of /dev/fuse (c 10 229, the mode distros ship) is bound over
/dev/fuse, so an unprivileged libfuse can open it and mount through
fusermount3. Nothing outside the namespace changes. The layers are a copy
of the three-layer stack with user.overlay.* markers, owned by nobody.

  fusermount3  nobody runs layerfs (mounted by the setuid fusermount3);
               root mounts kernel overlayfs with userxattr over the same
               lowers; nobody runs the same seeded operations on both.
  userns       nobody runs `unshare -Urm` (as rootless podman runs its
               mount program): inside, layerfs and kernel overlayfs
               (userxattr) are both mounted by the namespace's root, who
               runs the operations.
  userxattr    root mounts both, layerfs with -o userxattr: the same form
               where trusted.* could be written.
  records by nobody  nobody's daemon with xattr_permissions=2,allow_other
               (user_allow_other in a fuse.conf bound in the namespace),
               asked by root for owners, set-id bits and a device the
               disk refuses it: the mount and `layerctl commit` show them.
  records      root mounts layerfs with xattr_permissions=2: owners, modes
               and set-id bits live in user.containers.override_stat, yet
               the mount shows what kernel overlayfs (plain chown) shows.

Each compares every outcome and the final trees (the unprivileged daemons
also: a failed mount changes nothing; SIGTERM unmounts and exits 0), then
checks layerfs's
upper: nothing in trusted.*, whiteouts as char 0/0 devices (mknod of a
whiteout needs no privilege), opaque dirs as user.overlay.opaque=y, and
kernel overlayfs (userxattr) over that upper shows the same tree again.
A merged directory cannot be renamed there (EXDEV, as in the kernel,
which follows no redirects with userxattr).

  test_rootless.py [--seed 11] [--ops 1500]
"""
import argparse
import json
import os
import signal
import stat
import subprocess
import tarfile
import sys

import differential
import harness
import stacks

NOBODY = 65534
USERXATTR = ["userxattr"]


def user_form(layers, owner):
    """Gives the layers user.overlay.* markers and `owner` as owner, and
    leaves out device nodes (no user can have made them)."""
    for layer in layers:
        for dirpath, dirnames, filenames in os.walk(layer):
            for p in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
                st = os.lstat(p)
                if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and st.st_rdev:
                    os.unlink(p)
                    continue
                os.chown(p, owner, owner, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(p, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
                if stat.S_ISDIR(st.st_mode):
                    try:
                        value = os.getxattr(p, "trusted.overlay.opaque")
                    except OSError:
                        continue
                    os.setxattr(p, "user.overlay.opaque", value)
                    os.removexattr(p, "trusted.overlay.opaque")
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def portable(snap):
    """A snapshot as JSON can carry it (xattr values as text)."""
    return {p: {k: repr(v) for k, v in d.items()} for p, d in snap.items()}


def marker_counts(upper):
    """What kinds of markers an upper holds, and any trusted.* marker."""
    counts = {"device_whiteouts": 0, "wh_files": 0, "user_opaque": 0, "records": 0}
    trusted = []
    for dirpath, dirnames, filenames in os.walk(upper):
        for p in [dirpath] + [os.path.join(dirpath, n) for n in filenames + dirnames]:
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                counts["device_whiteouts"] += 1
            if os.path.basename(p).startswith(".wh."):
                counts["wh_files"] += 1
            try:
                names = os.listxattr(p, follow_symlinks=False)
            except OSError:
                continue
            # (escaped names, trusted.overlay.overlay.*, are data set by root)
            trusted += [f"{os.path.relpath(p, upper)}: {n}" for n in names
                        if n.startswith("trusted.")
                        and not n.startswith("trusted.overlay.overlay.")]
            if "user.overlay.opaque" in names and stat.S_ISDIR(st.st_mode):
                counts["user_opaque"] += 1
            if "user.containers.override_stat" in names:
                counts["records"] += 1
    return counts, trusted


def merged_dir_rename(mnt):
    """rename(2) of a directory with lower content: its errno, or 0."""
    try:
        os.rename(os.path.join(mnt, "usr/lib"), os.path.join(mnt, "usr/lib-moved"))
    except OSError as e:
        return e.errno
    os.rename(os.path.join(mnt, "usr/lib-moved"), os.path.join(mnt, "usr/lib"))
    return 0


def failed_mount_leaves_nothing(d, lowers):
    """A mount that cannot be made exits non-zero and changes nothing."""
    before = sorted(os.listdir(d["lu"])), sorted(os.listdir(d["lw"]))
    r = subprocess.run([harness.LAYERFS, "-o", harness.layerfs_options(
        lowers + [os.path.join(d["lu"], "no-such-layer")], d["lu"], d["lw"]), d["lm"]],
        capture_output=True, timeout=30)
    problems = []
    if r.returncode == 0 or harness.is_mounted(d["lm"]):
        problems.append("a mount over a missing lower did not fail cleanly")
    if (sorted(os.listdir(d["lu"])), sorted(os.listdir(d["lw"]))) != before:
        problems.append("a failed mount changed the upper or work dir")
    return problems


def worker(args):
    """Runs as nobody, or as root of a user namespace: the operations, the
    comparison and (in a user namespace) the interop view."""
    spec = json.loads(args.worker)
    d, lowers, mode = spec["dirs"], spec["lowers"], spec["mode"]
    if mode == "snapshot":
        print(json.dumps(portable(harness.snapshot(d["km"]))))
        return
    out = {"problems": []}
    signal.signal(signal.SIGALRM, harness._on_alarm)
    signal.alarm(900)
    if mode == "userns":
        kernel = harness.kernel_overlay(d["km"], lowers, d["ku"], d["kw"], USERXATTR)
    else:
        kernel = open(os.devnull)  # mounted by root before this ran
    out["problems"] += failed_mount_leaves_nothing(d, lowers)
    with kernel, harness.layerfs(d["lm"], lowers, d["lu"], d["lw"]) as daemon:
        out["rename_errno"] = [merged_dir_rename(d["km"]), merged_dir_rename(d["lm"])]
        # nobody's daemon has no DAC override: modes keep the owner's access
        modes = differential.OWNER_MODES if mode == "fusermount3" else differential.MODES
        mismatches, found = differential.run_both(d["km"], d["lm"], spec["seed"],
                                                  spec["ops"], mode, modes)
        out["mismatches"] = mismatches
        out["problems"] += found
        expected = harness.snapshot(d["km"])
        out["problems"] += harness.compare(expected, harness.snapshot(d["lm"]), "layerfs")
        out["entries"] = len(expected)
        out["expected"] = portable(expected)
        daemon.send_signal(signal.SIGTERM)  # unmounts (through fusermount3) and exits 0
        daemon.wait(timeout=30)
        if harness.is_mounted(d["lm"]):
            out["problems"].append("SIGTERM left the mount in place")
    if mode == "userns":
        os.rmdir(d["km"])
        os.mkdir(d["km"])
        with harness.kernel_overlay(d["km"], lowers, d["lu"], d["lw"], USERXATTR):
            crossed = harness.snapshot(d["km"])
        out["problems"] += harness.compare(expected, crossed, "kernel view of layerfs upper")
    print(json.dumps(out))


def run_worker(mode, spec, prefix):
    """Runs this file as a worker under `prefix`; returns its result."""
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    cmd = prefix + [python, os.path.abspath(__file__),
                    "--worker", json.dumps(dict(spec, mode=mode))]
    r = subprocess.run(cmd, capture_output=True, timeout=1000)
    sys.stderr.write(r.stderr.decode(errors="replace")[-4000:])
    if r.returncode != 0:
        return None, f"{mode} worker exited with {r.returncode}: " \
                     f"{r.stderr.decode(errors='replace').strip()[-600:]}"
    return json.loads(r.stdout.decode().strip().splitlines()[-1]), None


def fresh_dirs(base, owner):
    dirs = {n: os.path.join(base, n) for n in ("ku", "kw", "lu", "lw", "km", "lm")}
    for p in [base] + list(dirs.values()):
        os.makedirs(p, exist_ok=True)
        os.chown(p, owner, owner)
    return dirs


def check_upper(label, upper, problems, want_records=False):
    counts, trusted = marker_counts(upper)
    print(f"{label}: layerfs upper holds {counts}")
    problems += [f"{label}: trusted xattr in the upper: {t}" for t in trusted[:10]]
    if counts["wh_files"]:
        problems.append(f"{label}: .wh. files where a 0/0 device could be made")
    if not counts["device_whiteouts"] or not counts["user_opaque"]:
        problems.append(f"{label}: the operations made no whiteout or no opaque dir")
    if want_records and not counts["records"]:
        problems.append(f"{label}: no override_stat record written")


def unprivileged(tmp, lowers, seed, ops, mode, problems):
    d = fresh_dirs(os.path.join(tmp, mode), NOBODY)
    spec = {"dirs": d, "lowers": lowers, "seed": seed, "ops": ops}
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if mode == "fusermount3":
        with harness.kernel_overlay(d["km"], lowers, d["ku"], d["kw"], USERXATTR):
            out, err = run_worker(mode, spec, drop)
    else:
        out, err = run_worker(mode, spec, drop + ["unshare", "-Urm"])
    if err:
        problems.append(err)
        return
    print(f"{mode}: {ops} ops, {out['mismatches']} outcome mismatches, "
          f"{out['entries']} entries; rename of a merged dir: kernel errno "
          f"{out['rename_errno'][0]}, layerfs errno {out['rename_errno'][1]}")
    problems += [f"{mode}: {p}" for p in out["problems"]]
    if out["rename_errno"][0] != out["rename_errno"][1]:
        problems.append(f"{mode}: merged dir rename differs: {out['rename_errno']}")
    check_upper(mode, d["lu"], problems)
    if mode == "fusermount3":
        os.rmdir(d["km"])
        os.mkdir(d["km"])
        with harness.kernel_overlay(d["km"], lowers, d["lu"], d["lw"], USERXATTR):
            crossed, err = run_worker("snapshot", spec, drop)  # what nobody sees
        if err:
            problems.append(err)
            return
        problems += [f"{mode}: {p}" for p in
                     harness.compare(out["expected"], crossed, "kernel view of layerfs upper")]


def userxattr_as_root(tmp, lowers, seed, ops, problems):
    d = fresh_dirs(os.path.join(tmp, "userxattr"), 0)
    with harness.kernel_overlay(d["km"], lowers, d["ku"], d["kw"], USERXATTR), \
            harness.layerfs(d["lm"], lowers, d["lu"], d["lw"], USERXATTR):
        renames = [merged_dir_rename(d["km"]), merged_dir_rename(d["lm"])]
        mismatches, found = differential.run_both(d["km"], d["lm"], seed, ops, "userxattr")
        problems += found
        expected = harness.snapshot(d["km"])
        problems += [f"userxattr: {p}" for p in
                     harness.compare(expected, harness.snapshot(d["lm"]), "layerfs")]
    print(f"userxattr: {ops} ops, {mismatches} outcome mismatches, {len(expected)} "
          f"entries; rename of a merged dir: kernel errno {renames[0]}, layerfs "
          f"errno {renames[1]}")
    if renames[0] != renames[1]:
        problems.append(f"userxattr: merged dir rename differs: {renames}")
    check_upper("userxattr", d["lu"], problems)
    os.rmdir(d["km"])
    os.mkdir(d["km"])
    with harness.kernel_overlay(d["km"], lowers, d["lu"], d["lw"], USERXATTR):
        crossed = harness.snapshot(d["km"])
    problems += [f"userxattr: {p}" for p in
                 harness.compare(expected, crossed, "kernel view of layerfs upper")]


def records(tmp, seed, ops, problems):
    """xattr_permissions=2 as root: the records show what chown would."""
    lowers = stacks.build_kernel_form(os.path.join(tmp, "root-layers"), xattr_whiteouts=False)
    d = fresh_dirs(os.path.join(tmp, "records"), 0)
    opts = ["redirect_dir=on", "index=off", "metacopy=off"]
    with harness.kernel_overlay(d["km"], lowers, d["ku"], d["kw"], opts), \
            harness.layerfs(d["lm"], lowers, d["lu"], d["lw"], ["xattr_permissions=2"]):
        mismatches, found = differential.run_both(d["km"], d["lm"], seed, ops, "records")
        problems += found
        expected = harness.snapshot(d["km"])
        problems += [f"records: {p}" for p in
                     harness.compare(expected, harness.snapshot(d["lm"]), "layerfs")]
    print(f"records: {ops} ops, {mismatches} outcome mismatches, {len(expected)} entries")
    counts, _ = marker_counts(d["lu"])
    owned_elsewhere = 0  # entries whose record names an owner the disk does not
    for dirpath, dirnames, filenames in os.walk(d["lu"]):
        for p in [os.path.join(dirpath, n) for n in filenames + dirnames]:
            try:
                rec = os.getxattr(p, "user.containers.override_stat", follow_symlinks=False)
            except OSError:
                continue
            uid = int(rec.split(b":")[0])
            if uid != os.lstat(p).st_uid:
                owned_elsewhere += 1
    print(f"records: {counts['records']} records, {owned_elsewhere} with an owner "
          f"the disk does not have")
    if not counts["records"] or not owned_elsewhere:
        problems.append("records: chown through the mount wrote no record")


def records_by_nobody(tmp, lowers, problems):
    """xattr_permissions=2 in a daemon run by nobody (allow_other, as
    user_allow_other in a fuse.conf of this namespace allows), asked by
    root: what the disk refuses (another owner, set-id bits, a device)
    lands in the records, the mount shows it, and commit carries it."""
    conf = os.path.join(tmp, "fuse.conf")
    with open(conf, "w") as f:
        f.write("user_allow_other\n")
    subprocess.run(["mount", "--bind", conf, "/etc/fuse.conf"], check=True, timeout=20)
    d = fresh_dirs(os.path.join(tmp, "records-nobody"), NOBODY)

    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    m = d["lm"]
    umask = os.umask(0)  # the modes below as given
    with harness.layerfs(m, lowers, d["lu"], d["lw"], ["xattr_permissions=2", "allow_other"],
                         preexec=drop):
        fd = os.open(os.path.join(m, "tool"), os.O_CREAT | os.O_WRONLY, 0o755)
        os.close(fd)
        os.chown(os.path.join(m, "tool"), 1234, 5678)
        os.chmod(os.path.join(m, "tool"), 0o4755)
        os.mknod(os.path.join(m, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mkdir(os.path.join(m, "private"), 0o700)
        os.chown(os.path.join(m, "private"), 42, 42)
        os.chmod(os.path.join(m, "etc/passwd"), 0o600)  # a copy-up
        shown = {n: os.lstat(os.path.join(m, n)) for n in ("tool", "null", "private", "etc/passwd")}
    os.umask(umask)
    want = {"tool": (stat.S_IFREG | 0o4755, 1234, 5678),
            "null": (stat.S_IFCHR | 0o666, 0, 0),
            "private": (stat.S_IFDIR | 0o700, 42, 42),
            "etc/passwd": (stat.S_IFREG | 0o600, NOBODY, NOBODY)}
    for name, (mode, uid, gid) in want.items():
        st = shown[name]
        if (st.st_mode, st.st_uid, st.st_gid) != (mode, uid, gid):
            problems.append(f"records by nobody: {name} shows {oct(st.st_mode)} "
                            f"{st.st_uid}:{st.st_gid}, want {oct(mode)} {uid}:{gid}")
    if shown["null"].st_rdev != os.makedev(1, 3):
        problems.append("records by nobody: the device number is lost")
    disk = os.lstat(os.path.join(d["lu"], "null"))
    record = os.getxattr(os.path.join(d["lu"], "null"), "user.containers.override_stat")
    if not stat.S_ISREG(disk.st_mode) or disk.st_uid != NOBODY or record != b"0:0:0666:char-1-3":
        problems.append(f"records by nobody: the upper holds {oct(disk.st_mode)} "
                        f"{disk.st_uid} {record!r} for the device")
    tar = os.path.join(tmp, "records-nobody.tar")
    r = subprocess.run([harness.LAYERCTL, "commit", "--upper", d["lu"], "--lower",
                        ":".join(lowers), "-o", tar, "--quiet"], capture_output=True, timeout=60)
    if r.returncode:
        problems.append(f"records by nobody: commit failed: {r.stderr!r}")
        return
    with tarfile.open(tar) as t:
        got = {m.name: (m.mode, m.uid, m.gid, m.type) for m in t.getmembers()}
    for name, want_entry in (("tool", (0o4755, 1234, 5678, tarfile.REGTYPE)),
                             ("null", (0o666, 0, 0, tarfile.CHRTYPE)),
                             ("private/", (0o700, 42, 42, tarfile.DIRTYPE))):
        key = name.rstrip("/")
        entry = got.get(key) or got.get(name)
        if entry != want_entry:
            problems.append(f"records by nobody: commit has {name} as {entry}, want {want_entry}")
    print(f"records by nobody: {len(shown)} entries as recorded, commit carries them")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    harness.start(1800)
    harness.require_tools("setpriv", "unshare", "fusermount3")
    problems = []
    with harness.temp_dir() as tmp:
        os.chmod(tmp, 0o755)
        harness.private_fuse_namespace(tmp)
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"), xattr_whiteouts=False)
        user_form(lowers, NOBODY)
        with harness.lowers_unchanged(lowers, problems):
            for mode in ("fusermount3", "userns"):
                unprivileged(tmp, lowers, args.seed, args.ops, mode, problems)
            userxattr_as_root(tmp, lowers, args.seed, args.ops, problems)
            records_by_nobody(tmp, lowers, problems)
        records(tmp, args.seed, args.ops, problems)
    harness.check(problems[:200])


if __name__ == "__main__":
    main()
