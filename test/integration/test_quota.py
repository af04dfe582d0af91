"""-o quota=SIZE: a limit on what the writable layer may hold.

The use is counted over the upper dir: 256 bytes for every name below its
root, plus the st_size of every non-directory inode once (hard links share
it), 0 for a regular file marked trusted.overlay.metacopy. Each check
compares three counts that must agree exactly: the daemon's live one (the
root's xattr user.layerfs.quota), `layerctl size`'s walk of the upper, and
this test's own walk (upper_use below).

- Bad values (0, abc, -1, 12Q, empty, 1.5M, an overflow) and a quota on a
  read-only mount fail with one line and mount nothing; good ones (bytes,
  K, M, G, T) give statfs a size of exactly SIZE, rounded down to a block.
- A hand-made upper (hard links, a symlink, whiteouts, a sparse and a
  metacopy file) is counted as the rule says, the work dir not at all.
- Over a lower of a 3 MiB, a 2 MiB and small files, quota=4M: creates,
  links, symlinks, mkdir, sparse truncates and unlinks move the use by
  exactly what the rule says; new files written in 64 KiB, then 4 KiB,
  then 1-byte writes until each is refused fill the quota to the byte, and
  every refused call fails whole with EDQUOT at the call itself (no short
  write, the size as before). A full quota refuses every new name, growing
  truncate, fallocate and copy_file_range, but not an overwrite in place
  nor the rename of an upper file.
- A copy-up that does not fit (open for write, append, chmod, truncate of
  the 2 MiB lower file) fails with EDQUOT and leaves the upper and W/work as
  they were, even where the file's lower parent dir alone would fit; once
  deletes free room it succeeds with the right data.
- Deleting lower files, one in a lower dir, and that dir on a full quota
  works (whiteouts, and the dir's copy-up they need, may pass the quota).
- layerctl size (text and JSON, mount and --lower/--upper forms) and ps
  (JSON and table) show Quota and QuotaUsed; a mount without quota has 0.
- Remounting rebuilds the count from the upper (also what changed in it
  while unmounted); a larger quota lets writes in again, a smaller one than
  the use mounts with nothing free and deletes still work.
- Six processes appending 64 KiB chunks to their own files and to one
  shared file (O_APPEND and pwrite) until EDQUOT stop within one chunk of
  the limit, never past it, every chunk whole, the counts equal.
- Under metacopy=on, a chmod that fits (256 bytes) makes a metadata-only
  file, and the append that would bring its data in is refused.
"""
import ctypes
import errno
import json
import multiprocessing
import os
import stat
import subprocess
import traceback

import harness

KiB, MiB = 1 << 10, 1 << 20
NAME_COST = 256
CHUNK = 64 * KiB
QUOTA_XATTR = "user.layerfs.quota"
METACOPY_XATTRS = ("trusted.overlay.metacopy", "user.overlay.metacopy")
FALLOC_FL_KEEP_SIZE = 1


class Stop(Exception):
    """A check failed in a way that makes the rest of its section moot."""


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def attempt(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errname(e))


def layerctl(*args):
    return subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=120)


def layerctl_json(*args):
    r = layerctl(*args)
    if r.returncode:
        raise Stop(f"layerctl {' '.join(args)}: exit {r.returncode}: "
                   f"{r.stderr.decode().strip()}")
    return json.loads(r.stdout)


def human_size(n):
    """lib/layer/layer_size.cpp's human_size: 3 significant digits, kB/MB..."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    size, unit = float(n), 0
    while size >= 1000.0 and unit + 1 < len(units):
        size /= 1000.0
        unit += 1
    return f"{size:.3g}{units[unit]}"


def is_metacopy(path):
    for name in METACOPY_XATTRS:
        try:
            os.getxattr(path, name, follow_symlinks=False)
            return True
        except OSError:
            pass
    return False


def upper_use(upper):
    """The quota rule, applied by this test to the upper dir."""
    used, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            used += NAME_COST
            if stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if stat.S_ISREG(st.st_mode) and is_metacopy(path):
                continue
            used += st.st_size
    return used


def quota_xattr(mnt):
    """(used, limit) as the daemon counts them."""
    try:
        raw = os.getxattr(mnt, QUOTA_XATTR)
    except OSError as e:
        raise Stop(f"getxattr {QUOTA_XATTR} on the mount root: {errname(e)}")
    try:
        q = json.loads(raw)
        return q["used"], q["limit"]
    except (ValueError, KeyError, TypeError):
        raise Stop(f"{QUOTA_XATTR} is not {{\"used\": N, \"limit\": N}}: {raw!r}")


def work_entries(work):
    inner = os.path.join(work, "work")
    return sorted(os.listdir(inner)) if os.path.isdir(inner) else []


def counts_agree(problems, what, mnt, lower, upper, limit):
    """Checks the daemon's count against layerctl's and this test's walks;
    returns the daemon's."""
    used, got_limit = quota_xattr(mnt)
    walked = upper_use(upper)
    size = layerctl_json("size", "--json", mnt)
    offline = layerctl_json("size", "--json", "--lower", lower, "--upper", upper)
    if got_limit != limit:
        problems.append(f"{what}: the xattr's limit is {got_limit}, the mount has quota {limit}")
    if used != walked:
        problems.append(f"{what}: the daemon counts {used} bytes, the upper's walk by the "
                        f"rule gives {walked} (diff {used - walked:+d})")
    if (size.get("Quota"), size.get("QuotaUsed")) != (limit, walked):
        problems.append(f"{what}: layerctl size --json MNT says Quota {size.get('Quota')} "
                        f"QuotaUsed {size.get('QuotaUsed')}, want {limit} and {walked}")
    if (offline.get("Quota"), offline.get("QuotaUsed")) != (0, walked):
        problems.append(f"{what}: layerctl size --json --lower --upper says Quota "
                        f"{offline.get('Quota')} QuotaUsed {offline.get('QuotaUsed')}, "
                        f"want 0 and {walked}")
    return used


def statfs_agrees(problems, what, mnt, upper, limit, used):
    st = os.statvfs(mnt)
    block = st.f_frsize or st.f_bsize
    if not block:
        problems.append(f"{what}: statfs has a block size of 0")
        return
    if st.f_blocks * block != limit // block * block:
        problems.append(f"{what}: statfs size f_blocks*f_frsize = {st.f_blocks}*{block} = "
                        f"{st.f_blocks * block}, want the quota {limit} rounded down "
                        f"to {limit // block * block}")
    room = max(limit - used, 0) // block
    for field in ("f_bfree", "f_bavail"):
        # the real filesystem's free space moves meanwhile: measured around it
        real = [getattr(r, field) * r.f_frsize // block for r in
                (os.statvfs(upper), os.statvfs(mnt), os.statvfs(upper))]
        got, slack = real[1], MiB // block
        if room <= min(real[0], real[2]):
            low = high = room
        else:
            low, high = min(real[0], real[2]) - slack, min(room, max(real[0], real[2]) + slack)
        if not low <= got <= high:
            problems.append(f"{what}: statfs {field} = {got} blocks of {block}, want "
                            f"{min(room, real[0])} (quota {limit} - use {used}, in blocks, "
                            f"and no more than the real filesystem's)")


def expect_delta(problems, what, mnt, fn, delta):
    """Runs fn(); the daemon's count must move by exactly `delta`. False
    when fn failed."""
    before, _ = quota_xattr(mnt)
    r = attempt(fn)
    if r[0] != "ok":
        problems.append(f"{what}: {r[1]} with {quota_xattr(mnt)[1] - before} bytes free")
        return False
    after, _ = quota_xattr(mnt)
    if after - before != delta:
        problems.append(f"{what}: the use moved by {after - before:+d}, want {delta:+d}")
    return True


def write_or_refuse(problems, what, fd, data, upper_path, offset=None, shared=False):
    """One write(2) (pwrite at `offset`) that must write all of `data` or fail
    with EDQUOT changing nothing (the size is not compared for a `shared`
    file, which others change meanwhile). True when written, False when
    refused."""
    before = os.fstat(fd).st_size
    try:
        n = os.write(fd, data) if offset is None else os.pwrite(fd, data, offset)
    except OSError as e:
        if e.errno != errno.EDQUOT:
            problems.append(f"{what}: a {len(data)}-byte write failed with {errname(e)}, "
                            f"not EDQUOT")
            raise Stop(what)
        seen, up = os.fstat(fd).st_size, os.lstat(upper_path).st_size
        if not shared and (seen, up) != (before, before):
            problems.append(f"{what}: a refused {len(data)}-byte write changed the size "
                            f"from {before} to {seen} (upper {up})")
        return False
    if n != len(data):
        problems.append(f"{what}: a {len(data)}-byte write wrote {n}: a partial write "
                        f"instead of EDQUOT")
        raise Stop(what)
    return True


def fill_quota(problems, mnt, upper, prefix, fallback):
    """Creates PREFIX0, PREFIX1... of up to 1 MiB in 64 KiB writes until a
    create or write is refused, then appends 4 KiB and then 1-byte writes to
    the last file (or `fallback`) until those are refused too. Returns the
    files written and their sizes."""
    sizes = {}
    last = None
    for i in range(200):
        name = f"{prefix}{i}"
        try:
            fd = os.open(os.path.join(mnt, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            if e.errno != errno.EDQUOT:
                problems.append(f"fill: creating {name} failed with {errname(e)}, not EDQUOT")
                raise Stop("fill")
            if os.path.lexists(os.path.join(upper, name)):
                problems.append(f"fill: a create refused with EDQUOT left {name} in the upper")
            break
        last, sizes[name], refused = name, 0, False
        try:
            while sizes[name] < MiB:
                if not write_or_refuse(problems, f"fill {name}", fd, bytes([i]) * CHUNK,
                                       os.path.join(upper, name)):
                    refused = True
                    break
                sizes[name] += CHUNK
        finally:
            os.close(fd)
        if refused:
            break
    target = last or fallback
    fd = os.open(os.path.join(mnt, target), os.O_WRONLY | os.O_APPEND)
    try:
        for size in (4 * KiB, 1):
            for _ in range(2 * CHUNK // size):
                if not write_or_refuse(problems, f"fill {target} ({size} B)", fd,
                                       b"z" * size, os.path.join(upper, target)):
                    break
                sizes[target] = sizes.get(target, 0) + size
            else:
                problems.append(f"fill {target}: {2 * CHUNK} bytes of {size}-byte writes "
                                f"were all accepted after a 64 KiB one was refused")
    finally:
        os.close(fd)
    return sizes


# ---------------------------------------------------------------- options

def bad_options(tmp, problems):
    lower, upper, work, mnt = harness.make_dirs(tmp, "opt-l", "opt-u", "opt-w", "opt-m")
    layers = f"lowerdir={lower},upperdir={upper},workdir={work}"
    cases = [(f"{layers},quota={v}", f"quota={v}")
             for v in ("0", "abc", "-1", "12Q", "", "1.5M", "0K", "20000000T")]
    cases.append((f"lowerdir={lower},quota=4M", "quota without upperdir"))
    for opts, what in cases:
        r = subprocess.run([harness.LAYERFS, "-o", opts, mnt], capture_output=True,
                           text=True, timeout=30)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if r.returncode == 0:
            problems.append(f"{what}: exit 0, expected an error")
        elif (len(lines) != 1 or not lines[0].startswith("layerfs: ")
              or not ("quota" in lines[0] or "upperdir" in lines[0])):
            problems.append(f"{what}: expected one line 'layerfs: ...' naming the quota, "
                            f"got {r.stderr!r}")
        if harness.is_mounted(mnt):
            problems.append(f"{what}: left a mount behind")
            harness.unmount(mnt)
    for value, size in (("1000000", 1000000), ("512K", 512 * KiB), ("32M", 32 * MiB),
                        ("3G", 3 << 30), ("1T", 1 << 40)):
        with harness.layerfs(mnt, [lower], upper, work, [f"quota={value}"]):
            statfs_agrees(problems, f"quota={value}", mnt, upper, size, 0)
            _, limit = quota_xattr(mnt)
            if limit != size:
                problems.append(f"quota={value}: the xattr's limit is {limit}, want {size}")
            if value == "32M":
                df = subprocess.run(["df", "-B1", "--output=size", mnt],
                                    capture_output=True, text=True, timeout=30)
                lines = df.stdout.split()
                if df.returncode or lines[-1] != str(32 * MiB):
                    problems.append(f"quota=32M: df -B1 says {df.stdout!r}, want {32 * MiB}")
    print("options: bad values refused in one line, sizes as statfs shows them")


# ---------------------------------------------------------------- the rule

def rule(tmp, problems):
    """A hand-made upper, its count worked out by hand."""
    lower, upper, work, mnt = harness.make_dirs(tmp, "rule-l", "rule-u", "rule-w", "rule-m")
    with open(os.path.join(lower, "big3"), "wb") as f:
        f.write(os.urandom(3 * MiB))
    os.makedirs(os.path.join(upper, "d"))
    with open(os.path.join(upper, "d/a"), "wb") as f:
        f.write(b"a" * 1000)
    os.link(os.path.join(upper, "d/a"), os.path.join(upper, "d/a2"))
    os.symlink("d/a", os.path.join(upper, "s"))
    os.mknod(os.path.join(upper, "gone"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    open(os.path.join(upper, ".wh.old"), "wb").close()
    with open(os.path.join(upper, "sparse"), "wb") as f:
        f.truncate(MiB)
    with open(os.path.join(upper, "big3"), "wb") as f:
        f.truncate(3 * MiB)
    os.setxattr(os.path.join(upper, "big3"), "trusted.overlay.metacopy", b"")
    with open(os.path.join(work, "leftover"), "wb") as f:
        f.write(b"w" * MiB)
    names = 8  # d d/a d/a2 s gone .wh.old sparse big3
    want = names * NAME_COST + 1000 + len("d/a") + MiB
    if upper_use(upper) != want:
        raise Stop(f"rule: this test's walk gives {upper_use(upper)}, by hand {want}")
    with harness.layerfs(mnt, [lower], upper, work, ["quota=8M"]):
        used = counts_agree(problems, "rule", mnt, lower, upper, 8 * MiB)
        if used != want:
            problems.append(f"rule: the daemon counts {used} for the hand-made upper, want "
                            f"{want} (8 names, 1000 bytes once for two links, a 3-byte "
                            f"symlink, a 1 MiB sparse file, a metacopy file as 0)")
    print(f"rule: a hand-made upper counts {want} bytes")


# ---------------------------------------------------------------- one mount

def exact_deltas(problems, mnt):
    def write_new():
        with open(os.path.join(mnt, "n0"), "wb") as f:
            f.write(b"n" * 1000)

    def sparse():
        with open(os.path.join(mnt, "sparse"), "r+b") as f:
            f.truncate(512 * KiB)

    expect_delta(problems, "create n0 and write 1000 bytes", mnt, write_new, NAME_COST + 1000)
    expect_delta(problems, "link n0 n0link", mnt,
                 lambda: os.link(os.path.join(mnt, "n0"), os.path.join(mnt, "n0link")),
                 NAME_COST)
    expect_delta(problems, "symlink sym -> n0", mnt,
                 lambda: os.symlink("n0", os.path.join(mnt, "sym")), NAME_COST + 2)
    expect_delta(problems, "mkdir nd", mnt, lambda: os.mkdir(os.path.join(mnt, "nd")),
                 NAME_COST)
    expect_delta(problems, "create sparse", mnt,
                 lambda: open(os.path.join(mnt, "sparse"), "wb").close(), NAME_COST)
    expect_delta(problems, "truncate sparse up to 512 KiB", mnt, sparse, 512 * KiB)
    expect_delta(problems, "unlink n0link", mnt,
                 lambda: os.unlink(os.path.join(mnt, "n0link")), -NAME_COST)


def refused_when_full(problems, mnt, upper, victim):
    """Every call that would add a name or a byte is refused with EDQUOT."""
    for what, fn, name in (
            ("create", lambda p: open(p, "xb").close(), "new-file"),
            ("mkdir", lambda p: os.mkdir(p), "new-dir"),
            ("symlink", lambda p: os.symlink("n0", p), "new-sym"),
            ("mkfifo", lambda p: os.mkfifo(p), "new-fifo"),
            ("link", lambda p: os.link(os.path.join(mnt, "n0"), p), "new-link")):
        r = attempt(lambda: fn(os.path.join(mnt, name)))
        if r != ("err", "EDQUOT"):
            problems.append(f"full: {what} {name}: {r}, not EDQUOT")
        if os.path.lexists(os.path.join(upper, name)) or os.path.lexists(os.path.join(mnt, name)):
            problems.append(f"full: a refused {what} left {name} behind")
    path = os.path.join(mnt, victim)
    size = os.lstat(path).st_size
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(path, os.O_RDWR)
    src = os.open(os.path.join(mnt, "n0"), os.O_RDONLY)
    try:
        for what, fn in (
                ("ftruncate +1", lambda: os.ftruncate(fd, size + 1)),
                ("truncate +64 KiB by path", lambda: os.truncate(path, size + CHUNK)),
                ("posix_fallocate past the end", lambda: os.posix_fallocate(fd, size, CHUNK)),
                ("copy_file_range past the end",
                 lambda: os.copy_file_range(src, fd, 1000, 0, size))):
            r = attempt(fn)
            if r != ("err", "EDQUOT"):
                problems.append(f"full: {what}: {r}, not EDQUOT")
            if os.fstat(fd).st_size != size or os.lstat(os.path.join(upper, victim)).st_size != size:
                problems.append(f"full: a refused {what} changed {victim}'s size from {size}")
        if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, size, CHUNK) != 0:
            err = ctypes.get_errno()
            if err == errno.EDQUOT:
                problems.append("full: fallocate with KEEP_SIZE (no size change) got EDQUOT")
        # A size the upper's filesystem cannot hold at all gets its error
        # (pjdfstest truncate/12), not the quota's.
        huge = 999999999999999
        probe = os.path.join(os.path.dirname(upper), "size-probe")
        with open(probe, "wb") as f:
            fs_says = attempt(lambda: os.ftruncate(f.fileno(), huge))
        os.unlink(probe)
        want = ("err", "EDQUOT") if fs_says[0] == "ok" else fs_says
        r = attempt(lambda: os.ftruncate(fd, huge))
        if r != want:
            problems.append(f"full: ftruncate to {huge}: {r}, not {want} (the filesystem says {fs_says})")
        r = attempt(lambda: os.pwrite(fd, b"O" * 4096, 0))
        if r != ("ok", 4096):
            problems.append(f"full: an overwrite in place (no growth) of 4 KiB: {r}")
    finally:
        os.close(src)
        os.close(fd)


COPY_UPS = (("open for append", lambda p: open(p, "ab").close()),
            ("open r+", lambda p: open(p, "r+b").close()),
            ("chmod", lambda p: os.chmod(p, 0o600)),
            ("truncate to 10", lambda p: os.truncate(p, 10)))


def copy_up_refused(problems, mnt, upper, work, lower, files, what, hows=COPY_UPS):
    """Each copy-up of each lower file in `files` ({path: data}) fails with
    EDQUOT and leaves the upper (parent dirs included) and W/work as they
    were, and the file's data as the lower's."""
    for name, data in files.items():
        for how, fn in hows:
            before = harness.snapshot(upper)
            r = attempt(lambda: fn(os.path.join(mnt, name)))
            if r != ("err", "EDQUOT"):
                problems.append(f"{what}: copy-up of {name} by {how}: {r}, not EDQUOT")
            for diff in harness.compare(before, harness.snapshot(upper), "the upper"):
                problems.append(f"{what}: a refused copy-up of {name} by {how}: {diff}")
            if work_entries(work):
                problems.append(f"{what}: a refused copy-up of {name} by {how} left "
                                f"{work_entries(work)} in W/work")
        for where, root in (("through the mount", mnt), ("in the lower", lower)):
            with open(os.path.join(root, name), "rb") as f:
                if f.read() != data:
                    problems.append(f"{what}: {name} {where} is no longer the lower's data")


def ps_and_text(problems, tmp, mnt, lower, upper, limit):
    plain_u, plain_w, plain_m = harness.make_dirs(tmp, "plain-u", "plain-w", "plain-m")
    with harness.layerfs(plain_m, [lower], plain_u, plain_w):
        with open(os.path.join(plain_m, "p"), "wb") as f:
            f.write(b"p" * 100)
        used, _ = quota_xattr(mnt)
        rows = {r["MergedDir"]: r for r in layerctl_json("ps", "--json")}
        ours, plain = rows.get(os.path.realpath(mnt)), rows.get(os.path.realpath(plain_m))
        if not ours or (ours.get("Quota"), ours.get("QuotaUsed")) != (limit, used):
            problems.append(f"ps --json: the quota mount's row {ours}, want Quota {limit} "
                            f"QuotaUsed {used}")
        if not plain or (plain.get("Quota"), plain.get("QuotaUsed")) != (0, upper_use(plain_u)):
            problems.append(f"ps --json: the mount without quota: {plain}, want Quota 0 "
                            f"QuotaUsed {upper_use(plain_u)}")
        table = layerctl("ps").stdout.decode().splitlines()
        line = next((l for l in table if l.split()[:1] == [os.path.realpath(mnt)]), "")
        if not table or "QUOTA" not in table[0].upper() or human_size(limit) not in line:
            problems.append(f"ps table: no quota column or no {human_size(limit)} on the "
                            f"mount's line: {table[:1]} {line!r}")
        text = layerctl("size", mnt).stdout.decode().splitlines()
        want = f"quota {human_size(used)} of {human_size(limit)}"
        if want not in text:
            problems.append(f"size text: no line {want!r} in {text}")
        plain_text = layerctl("size", plain_m).stdout.decode()
        if "quota" in plain_text:
            problems.append(f"size text of a mount without quota has a quota line: {plain_text!r}")
        plain_size = layerctl_json("size", "--json", plain_m)
        if plain_size.get("Quota") != 0 or plain_size.get("QuotaUsed") != upper_use(plain_u):
            problems.append(f"size --json of a mount without quota: Quota "
                            f"{plain_size.get('Quota')} QuotaUsed {plain_size.get('QuotaUsed')}")


def one_mount(tmp, problems):
    lower, upper, work, mnt = harness.make_dirs(tmp, "l", "u", "w", "m")
    big2, big3 = os.urandom(2 * MiB), os.urandom(3 * MiB)
    os.makedirs(os.path.join(lower, "deep"))
    for name, data in (("big2", big2), ("big3", big3), ("deep/big2", big2)):
        with open(os.path.join(lower, name), "wb") as f:
            f.write(data)
    for i in range(5):
        with open(os.path.join(lower, f"s{i}"), "wb") as f:
            f.write(b"s" * 1000)
    os.makedirs(os.path.join(lower, "ldir"))
    with open(os.path.join(lower, "ldir/x"), "wb") as f:
        f.write(b"x" * 10)
    limit = 4 * MiB
    with harness.lowers_unchanged([lower], problems):
        with harness.layerfs(mnt, [lower], upper, work, ["quota=4M"]):
            used = counts_agree(problems, "empty upper", mnt, lower, upper, limit)
            statfs_agrees(problems, "empty upper", mnt, upper, limit, used)
            exact_deltas(problems, mnt)
            used = counts_agree(problems, "after the exact deltas", mnt, lower, upper, limit)
            statfs_agrees(problems, "after the exact deltas", mnt, upper, limit, used)

            sizes = fill_quota(problems, mnt, upper, "f", "n0")
            used = counts_agree(problems, "filled", mnt, lower, upper, limit)
            if used != limit:
                problems.append(f"filled: 1-byte writes refused with {used} of {limit} bytes "
                                f"used: each write must fit whole or be refused")
            statfs_agrees(problems, "filled", mnt, upper, limit, used)
            print(f"filled: {len(sizes)} files, {sum(sizes.values())} bytes, use {used}")
            refused_when_full(problems, mnt, upper, "f0")
            expect_delta(problems, "full: rename of an upper-only symlink (no new name)", mnt,
                         lambda: os.rename(os.path.join(mnt, "sym"),
                                           os.path.join(mnt, "sym2")), 0)
            used = counts_agree(problems, "after the refused calls", mnt, lower, upper, limit)
            if used != limit:
                problems.append(f"full: the refused calls moved the use from {limit} to {used}")

            copy_up_refused(problems, mnt, upper, work, lower,
                            {"big2": big2, "deep/big2": big2}, "full")
            expect_delta(problems, "unlink f0 (1 MiB)", mnt,
                         lambda: os.unlink(os.path.join(mnt, "f0")), -(NAME_COST + sizes["f0"]))
            # a truncate to 10 bytes would fit, and is left out
            copy_up_refused(problems, mnt, upper, work, lower, {"big2": big2},
                            "1 MiB free", COPY_UPS[:3])
            expect_delta(problems, "unlink f1 (1 MiB)", mnt,
                         lambda: os.unlink(os.path.join(mnt, "f1")), -(NAME_COST + sizes["f1"]))

            def append_tail():
                with open(os.path.join(mnt, "big2"), "ab") as f:
                    f.write(b"tail")

            if expect_delta(problems, "copy-up of big2 by append with 2 MiB + 512 free",
                            mnt, append_tail, NAME_COST + 2 * MiB + 4):
                with open(os.path.join(mnt, "big2"), "rb") as f:
                    if f.read() != big2 + b"tail":
                        problems.append("big2 after its copy-up is not the lower's data + tail")
            if work_entries(work):
                problems.append(f"W/work after a copy-up: {work_entries(work)}")
            used = counts_agree(problems, "after the copy-up", mnt, lower, upper, limit)
            statfs_agrees(problems, "after the copy-up", mnt, upper, limit, used)

            fill_quota(problems, mnt, upper, "g", "n0")
            used = counts_agree(problems, "filled again", mnt, lower, upper, limit)
            if used != limit:
                problems.append(f"filled again: {used} of {limit} bytes used")
            expect_delta(problems, "unlink f2 (1 MiB)", mnt,
                         lambda: os.unlink(os.path.join(mnt, "f2")), -(NAME_COST + sizes["f2"]))
            # deep/'s 256 bytes would fit, but nothing is copied before the file fits
            copy_up_refused(problems, mnt, upper, work, lower, {"deep/big2": big2},
                            "1 MiB free", COPY_UPS[:3])
            fill_quota(problems, mnt, upper, "h", "n0")
            used = counts_agree(problems, "filled a third time", mnt, lower, upper, limit)
            if used != limit:
                problems.append(f"filled a third time: {used} of {limit} bytes used")
            deleted = set()
            for what, gone, fn in (
                    ("unlink s0", "s0", lambda: os.unlink(os.path.join(mnt, "s0"))),
                    ("unlink big3", "big3", lambda: os.unlink(os.path.join(mnt, "big3"))),
                    ("unlink ldir/x (ldir copied up for its whiteout)", "ldir/x",
                     lambda: os.unlink(os.path.join(mnt, "ldir/x"))),
                    ("rmdir ldir", "ldir", lambda: os.rmdir(os.path.join(mnt, "ldir")))):
                if gone == "ldir" and "ldir/x" not in deleted:
                    continue  # not empty: its failure is already reported
                r = attempt(fn)
                if r[0] != "ok":
                    problems.append(f"full: {what}, a lower entry: {r}; deleting always works")
                elif os.path.lexists(os.path.join(mnt, gone)):
                    problems.append(f"full: {gone} still shows after {what}")
                else:
                    deleted.add(gone)
            used = counts_agree(problems, "after the whiteouts", mnt, lower, upper, limit)
            statfs_agrees(problems, "after the whiteouts", mnt, upper, limit, used)
            ps_and_text(problems, tmp, mnt, lower, upper, limit)
            before = used
        remounts(problems, lower, upper, work, mnt, before)
    print("one mount: exact deltas, filled to the byte, copy-up refused then done, "
          "whiteouts on a full quota, ps and size, remounts")


def remounts(problems, lower, upper, work, mnt, before):
    def append(name, data):
        with open(os.path.join(mnt, name), "ab") as f:
            f.write(data)

    with harness.layerfs(mnt, [lower], upper, work, ["quota=4M"]):
        used = counts_agree(problems, "remount", mnt, lower, upper, 4 * MiB)
        if used != before:
            problems.append(f"remount: the count is {used}, before the unmount {before}")
        r = attempt(lambda: append("n0", b"!"))
        if r != ("err", "EDQUOT"):
            problems.append(f"remount: a 1-byte append on a full quota: {r}, not EDQUOT")
        r = attempt(lambda: open(os.path.join(mnt, "after-remount"), "xb").close())
        if r != ("err", "EDQUOT"):
            problems.append(f"remount: a create on a full quota: {r}, not EDQUOT")
    with open(os.path.join(upper, "added-offline"), "wb") as f:
        f.write(b"o" * 10000)
    with harness.layerfs(mnt, [lower], upper, work, ["quota=8M"]):
        used = counts_agree(problems, "remount with 8M", mnt, lower, upper, 8 * MiB)
        if used != before + NAME_COST + 10000:
            problems.append(f"remount with 8M: the count {used} is not the one before "
                            f"({before}) plus the file added to the upper while unmounted "
                            f"({NAME_COST + 10000}): it is not rebuilt from the upper")
        fd = os.open(os.path.join(mnt, "more"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for _ in range(16):
                if not write_or_refuse(problems, "remount with 8M", fd, b"m" * CHUNK,
                                       os.path.join(upper, "more")):
                    problems.append("remount with 8M: a 64 KiB write refused with "
                                    f"{quota_xattr(mnt)[0]} of {8 * MiB} used")
                    break
        finally:
            os.close(fd)
        used = counts_agree(problems, "8M, written", mnt, lower, upper, 8 * MiB)
        statfs_agrees(problems, "8M, written", mnt, upper, 8 * MiB, used)
    with harness.layerfs(mnt, [lower], upper, work, ["quota=1M"]):
        used = counts_agree(problems, "remount with 1M, below the use", mnt, lower, upper, MiB)
        statfs_agrees(problems, "1M, below the use", mnt, upper, MiB, used)
        r = attempt(lambda: append("n0", b"!"))
        if r != ("err", "EDQUOT"):
            problems.append(f"1M, below the use: a 1-byte append: {r}, not EDQUOT")
        expect_delta(problems, "1M, below the use: unlink more", mnt,
                     lambda: os.unlink(os.path.join(mnt, "more")), -(NAME_COST + MiB))


# ---------------------------------------------------------------- concurrency

WRITERS = 6
ROUNDS = 200  # 4 MiB is 64 chunks: far more rounds than the quota allows


def chunk_of(writer, seq):
    head = f"writer {writer} chunk {seq}\n".encode()
    return head + bytes([65 + writer]) * (CHUNK - len(head))


def appended_chunk(got):
    """The whole chunk an appending writer wrote, as named by the head of
    `got`; None when the head names none."""
    try:
        words = got[:got.index(b"\n")].split()
        index, seq = int(words[1]), int(words[3])
    except (ValueError, IndexError):
        return None
    if words[0] != b"writer" or index % 2 or not 0 <= index < WRITERS or seq < 10000:
        return None
    return chunk_of(index, seq)


def writer(mnt, upper, index, barrier, results):
    """Appends to own{index} and writes to shared (writers 0, 2, 4 by
    O_APPEND, 1, 3, 5 by pwrite at their own 64 KiB slots) until both are
    refused; reports what it wrote and what went wrong."""
    problems, own_bytes, slots = [], 0, []
    try:
        own = os.open(os.path.join(mnt, f"own{index}"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        shared_flags = os.O_WRONLY | (os.O_APPEND if index % 2 == 0 else 0)
        shared = os.open(os.path.join(mnt, "shared"), shared_flags)
        barrier.wait(30)
        own_done = shared_done = False
        seq = 0
        while not (own_done and shared_done) and seq < ROUNDS:
            if not own_done:
                if write_or_refuse(problems, f"writer {index} own", own, chunk_of(index, seq),
                                   os.path.join(upper, f"own{index}")):
                    own_bytes += CHUNK
                else:
                    own_done = True
            if not shared_done:
                slot = index // 2 + 3 * seq
                data = chunk_of(index, 10000 + seq)
                at = None if index % 2 == 0 else slot * CHUNK
                if write_or_refuse(problems, f"writer {index} shared", shared, data,
                                   os.path.join(upper, "shared"), at, shared=True):
                    if at is not None:
                        slots.append(slot)
                else:
                    shared_done = True
            seq += 1
        if seq >= ROUNDS:
            problems.append(f"writer {index}: {ROUNDS} rounds without EDQUOT")
        os.close(own)
        os.close(shared)
    except Stop:
        pass
    except BaseException as e:  # reported, never raised in the child
        problems.append(f"writer {index}: {e!r}")
    results.put((index, own_bytes, slots, problems))


def concurrent(tmp, problems):
    lower, upper, work, mnt = harness.make_dirs(tmp, "c-l", "c-u", "c-w", "c-m")
    limit = 4 * MiB
    ctx = multiprocessing.get_context("fork")
    with harness.layerfs(mnt, [lower], upper, work, ["quota=4M"]):
        open(os.path.join(mnt, "shared"), "wb").close()
        barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
        procs = [ctx.Process(target=writer, args=(mnt, upper, i, barrier, results))
                 for i in range(WRITERS)]
        for p in procs:
            p.start()
        reports = {}
        try:
            for _ in procs:
                index, own_bytes, slots, found = results.get(timeout=300)
                reports[index] = (own_bytes, slots)
                problems.extend(found)
        finally:
            for p in procs:
                p.join(30)
                if p.is_alive():
                    p.kill()
                    p.join()
        for p in procs:
            if p.exitcode != 0:
                problems.append(f"a writer process exited with {p.exitcode}")
        used = counts_agree(problems, "concurrent writers", mnt, lower, upper, limit)
        if used > limit:
            problems.append(f"concurrent writers: {used} bytes used, past the quota {limit}")
        elif limit - used >= CHUNK:
            problems.append(f"concurrent writers: all stopped with {limit - used} bytes "
                            f"free, room for another 64 KiB chunk")
        statfs_agrees(problems, "concurrent writers", mnt, upper, limit, used)
        for index, (own_bytes, slots) in sorted(reports.items()):
            path = os.path.join(mnt, f"own{index}")
            with open(path, "rb") as f:
                data = f.read()
            want = b"".join(chunk_of(index, s) for s in range(own_bytes // CHUNK))
            if data != want:
                problems.append(f"own{index}: {len(data)} bytes, not the {own_bytes} "
                                f"reported written, chunk by chunk")
        with open(os.path.join(mnt, "shared"), "rb") as f:
            shared = f.read()
        pwritten = {slot: (index, n) for index, (_, slots) in reports.items()
                    for n, slot in enumerate(slots)}
        for slot in range(len(shared) // CHUNK + (len(shared) % CHUNK > 0)):
            got = shared[slot * CHUNK:(slot + 1) * CHUNK]
            if slot in pwritten:
                index, n = pwritten[slot]
                if got != chunk_of(index, 10000 + n):
                    problems.append(f"shared: slot {slot}, pwritten by writer {index}, "
                                    f"does not hold that chunk")
            elif got != bytes(CHUNK) and got != appended_chunk(got):
                problems.append(f"shared: slot {slot} holds a torn or partial chunk "
                                f"{got[:24]!r}")
        total = sum(b for b, _ in reports.values())
        print(f"concurrent: {WRITERS} writers, {total} bytes to their own files, shared "
              f"{len(shared)} bytes, use {used} of {limit}")


# ---------------------------------------------------------------- metacopy

def metacopy(tmp, problems):
    lower, upper, work, mnt = harness.make_dirs(tmp, "mc-l", "mc-u", "mc-w", "mc-m")
    data = os.urandom(2 * MiB)
    with open(os.path.join(lower, "big2"), "wb") as f:
        f.write(data)
    with harness.layerfs(mnt, [lower], upper, work, ["quota=1M", "metacopy=on"]):
        expect_delta(problems, "metacopy: chmod of the 2 MiB big2 under quota=1M", mnt,
                     lambda: os.chmod(os.path.join(mnt, "big2"), 0o600), NAME_COST)
        counts_agree(problems, "metacopy: after the chmod", mnt, lower, upper, MiB)
        up = os.path.join(upper, "big2")
        if not os.path.exists(up) or not is_metacopy(up):
            problems.append("metacopy: the chmod did not leave a metacopy file in the upper")
            return
        r = attempt(lambda: open(os.path.join(mnt, "big2"), "ab").close())
        if r != ("err", "EDQUOT"):
            problems.append(f"metacopy: bringing in 2 MiB of data under quota=1M: {r}, "
                            f"not EDQUOT")
        if not is_metacopy(up) or os.lstat(up).st_size != 2 * MiB or work_entries(work):
            problems.append("metacopy: the refused data copy-up changed the metacopy file "
                            f"or left {work_entries(work)} in W/work")
        with open(os.path.join(mnt, "big2"), "rb") as f:
            if f.read() != data:
                problems.append("metacopy: big2 no longer reads as the lower's data")
        counts_agree(problems, "metacopy: refused", mnt, lower, upper, MiB)
    with harness.layerfs(mnt, [lower], upper, work, ["quota=4M", "metacopy=on"]):

        def append_tail():
            with open(os.path.join(mnt, "big2"), "ab") as f:
                f.write(b"tail")

        expect_delta(problems, "metacopy: the data copy-up under quota=4M", mnt,
                     append_tail, 2 * MiB + 4)
        with open(os.path.join(mnt, "big2"), "rb") as f:
            if f.read() != data + b"tail":
                problems.append("metacopy: big2 after its data copy-up is not lower + tail")
        counts_agree(problems, "metacopy: after the data copy-up", mnt, lower, upper, 4 * MiB)
    print("metacopy: a chmod that fits is metadata-only, its data refused then brought in")


def main():
    harness.start(540)
    problems = []
    with harness.temp_dir() as tmp:
        for section in (bad_options, rule, one_mount, concurrent, metacopy):
            try:
                section(tmp, problems)
            except (Stop, RuntimeError, OSError) as e:  # DaemonFailed is a RuntimeError
                here = [f for f in traceback.extract_tb(e.__traceback__)
                        if f.filename == __file__][-1]
                problems.append(f"{section.__name__}: stopped at line {here.lineno} "
                                f"({here.line}): {e}")
    harness.check(problems)


if __name__ == "__main__":
    main()
