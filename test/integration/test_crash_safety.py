"""Crash safety: the daemon, layerctl commit and layerctl apply SIGKILLed at
random moments lose nothing and leave nothing that looks complete.

Each round mounts a three-layer stack, runs a mixed workload in a child
process (copy-ups of large lower files by appending, creates with fsync,
renames across directories, unlinks, new files without fsync), SIGKILLs
the daemon after a random delay (some rounds while a large copy-up is under
way), drops the dead mount, checks the upper directly, remounts and checks
the merged view:
  - a copied-up lower file is its lower content followed only by bytes of
    the appended stream (or holes the kernel had not yet written back);
  - every create that fsync returned for is there, whole, at exactly one of
    the names a rename may have given it;
  - a file unlinked after its fsync is at most present as its whole self;
  - no work-dir temporary shows anywhere, and the work dir is empty once
    the mount is up again; the lowers are unchanged.
Then layerctl commit and apply are killed midway: the target is either
absent or complete (a commit that finished has its DiffID; an applied dir
matches the tarball).

  test_crash_safety.py [--rounds N]   (CI: 10; LAYERFS_SOAK=1: 200)
"""
import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time

import harness

BIG = 16 << 20  # a large lower file: its copy-up takes a while
STREAM_BLOCK = 4096


def stream(name, n):
    """The deterministic bytes the workload appends to `name`."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{name}:{i}".encode()).digest() * 128
        i += 1
    return bytes(out[:n])


def build_lowers(tmp):
    rnd = random.Random(3)
    lowers = [os.path.join(tmp, "layers", n) for n in ("top", "mid", "bottom")]
    for l in lowers:
        os.makedirs(l)
    for i in range(3):
        with open(os.path.join(lowers[2], f"big{i}"), "wb") as f:
            f.write(rnd.randbytes(BIG))
    for d in ("d1", "d2"):
        os.makedirs(os.path.join(lowers[1], d))
        for i in range(20):
            with open(os.path.join(lowers[1], d, f"small{i}"), "wb") as f:
                f.write(rnd.randbytes(3000))
    with open(os.path.join(lowers[0], "top.txt"), "w") as f:
        f.write("top\n")
    return lowers


WORKLOAD = r'''
import json, os, random, sys, hashlib
mnt, journal, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from test_crash_safety import stream, STREAM_BLOCK
rnd = random.Random(seed)
log = open(journal, "a", buffering=1)
def note(**kw):
    log.write(json.dumps(kw) + "\n")
    log.flush()
    os.fsync(log.fileno())
n = 0
while True:
    n += 1
    op = rnd.choice(["append", "create", "create", "rename", "unlink", "scratch"])
    try:
        if op == "append":
            name = f"big{rnd.randrange(3)}"
            with open(os.path.join(mnt, name), "ab") as f:
                size = f.tell()
                f.write(stream(name, size + STREAM_BLOCK * 4)[size:] if size >= 16 << 20 else b"")
        elif op == "create":
            d = rnd.choice(["d1", "d2", "."])
            name = f"f{seed}-{n}"
            data = hashlib.sha256(name.encode()).digest() * rnd.randrange(1, 400)
            path = os.path.join(mnt, d, name)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            note(op="fsynced", path=os.path.normpath(os.path.join(d, name)),
                 sha=hashlib.sha256(data).hexdigest())
        elif op == "rename":
            src_dir, dst_dir = rnd.sample(["d1", "d2"], 2)
            names = [x for x in os.listdir(os.path.join(mnt, src_dir)) if x.startswith("f")]
            if names:
                name = rnd.choice(names)
                note(op="rename", src=f"{src_dir}/{name}", dst=f"{dst_dir}/{name}")
                os.rename(os.path.join(mnt, src_dir, name), os.path.join(mnt, dst_dir, name))
        elif op == "unlink":
            d = rnd.choice(["d1", "d2"])
            names = os.listdir(os.path.join(mnt, d))
            if names:
                name = rnd.choice(names)
                note(op="unlink", path=f"{d}/{name}")
                os.unlink(os.path.join(mnt, d, name))
        else:
            with open(os.path.join(mnt, f"scratch{n % 7}"), "wb") as f:
                f.write(os.urandom(rnd.randrange(1, 200000)))
    except OSError as e:
        if e.errno in (107, 5, 103, 19):  # ENOTCONN, EIO, ECONNABORTED, ENODEV
            sys.exit(0)
'''


def expected_state(journal):
    """{path: sha} of fsynced files, their possible names, and names in doubt."""
    files = {}        # key -> sha
    where = {}        # key -> set of names it may be at now
    doubtful = set()  # keys unlinked (maybe) after their fsync
    if not os.path.exists(journal):
        return files, where, doubtful
    with open(journal) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue  # the last line may be cut by the kill
            if e["op"] == "fsynced":
                files[e["path"]] = e["sha"]
                where[e["path"]] = {e["path"]}
            elif e["op"] == "rename":
                for key, names in where.items():
                    if e["src"] in names:
                        names.add(e["dst"])
            elif e["op"] == "unlink":
                for key, names in where.items():
                    if e["path"] in names:
                        doubtful.add(key)
    return files, where, doubtful


def sha_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_view(root, lowers, journal, problems, label):
    for i in range(3):
        name = f"big{i}"
        with open(os.path.join(lowers[2], name), "rb") as f:
            base = f.read()
        with open(os.path.join(root, name), "rb") as f:
            data = f.read()
        if data[:len(base)] != base:
            problems.append(f"{label}: {name} does not start with its lower content "
                            f"({len(data)} bytes)")
            continue
        tail = data[len(base):]
        want = stream(name, len(base) + len(tail))[len(base):]
        bad = sum(1 for a, b in zip(tail, want) if a != b and a != 0)
        if bad:
            problems.append(f"{label}: {name}: {bad} appended bytes are neither written nor holes")
    files, where, doubtful = expected_state(journal)
    for key, sha in files.items():
        present = [n for n in where[key] if os.path.lexists(os.path.join(root, n))]
        for n in present:
            if sha_of(os.path.join(root, n)) != sha:
                problems.append(f"{label}: {n} (fsynced as {key}) has other content")
        if len(present) > 1:
            problems.append(f"{label}: {key} is at {len(present)} names: {present}")
        if not present and key not in doubtful:
            problems.append(f"{label}: fsynced {key} is gone")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            if n.startswith("#lfs"):
                problems.append(f"{label}: a work-dir temporary shows: {dirpath}/{n}")
    return len(files)


def crash_round(tmp, lowers, rnd, round_no, problems):
    base = os.path.join(tmp, f"round{round_no}")
    u, w, m = (os.path.join(base, n) for n in ("u", "w", "m"))
    for d in (u, w, m):
        os.makedirs(d)
    journal = os.path.join(base, "journal")
    with harness.layerfs(m, lowers, u, w, killed_by=signal.SIGKILL) as daemon:
        work = subprocess.Popen([sys.executable, "-c", WORKLOAD, m, journal, str(round_no),
                                 os.path.dirname(os.path.abspath(__file__))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if round_no % 3 == 0:
            # kill during a copy-up: start one from here and kill at once
            first = subprocess.Popen(["dd", "if=/dev/zero", f"of={m}/big{round_no % 3}",
                                      "bs=1", "count=0", "conv=notrunc", "oflag=append"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0.0, 0.05))
        else:
            time.sleep(rnd.uniform(0.05, 1.5))
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=20)
        try:
            work.wait(timeout=30)
        except subprocess.TimeoutExpired:
            work.kill()
            work.wait()
        if round_no % 3 == 0:
            first.kill()
            first.wait()
    if harness.is_mounted(m):
        problems.append(f"round {round_no}: dead mount left behind")
        harness.unmount(m)
    leftovers = os.listdir(os.path.join(w, "work")) if os.path.isdir(os.path.join(w, "work")) else []
    for dirpath, dirnames, filenames in os.walk(u):
        for n in dirnames + filenames:
            if n.startswith("#lfs"):
                problems.append(f"round {round_no}: temporary {n} in the upper at {dirpath}")
    with harness.layerfs(m, lowers, u, w):
        if os.listdir(os.path.join(w, "work")):
            problems.append(f"round {round_no}: work dir not emptied at mount")
        checked = check_view(m, lowers, journal, problems, f"round {round_no}")
    return len(leftovers), checked


def run_killed(argv, after):
    """Runs argv and SIGKILLs it `after` seconds in; True if the kill landed."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after)
    p.kill()
    p.wait()
    return p.returncode == -signal.SIGKILL


def commit_apply_kills(tmp, layerctl, rnd, rounds, problems):
    """commit and apply SIGKILLed midway: the target is absent or complete."""
    upper = os.path.join(tmp, "commit-src")
    os.makedirs(upper)
    for i in range(200):
        with open(os.path.join(upper, f"f{i}"), "wb") as f:
            f.write(rnd.randbytes(100_000))
    full = os.path.join(tmp, "full.tar")
    subprocess.run([layerctl, "commit", "--upper", upper, "-o", full, "-q"], check=True,
                   capture_output=True)
    with tarfile.open(full) as t:
        names = sorted(m.name for m in t.getmembers())
    killed = 0
    for i in range(rounds):
        out = os.path.join(tmp, f"out{i}")
        os.makedirs(out)
        target = os.path.join(out, "layer.tar.gz")
        killed += run_killed([layerctl, "commit", "--upper", upper, "-o", target, "-q"],
                             rnd.uniform(0.0, 0.4))
        if os.path.exists(target):
            with tarfile.open(target) as t:
                if sorted(m.name for m in t.getmembers()) != names:
                    problems.append(f"commit kill {i}: {target} exists but is incomplete")
        dest = os.path.join(out, "applied")
        killed += run_killed([layerctl, "apply", "-q", full, dest], rnd.uniform(0.0, 0.3))
        if os.path.exists(dest):
            got = sorted(os.listdir(dest))
            if len(got) != 200 or any(os.path.getsize(os.path.join(dest, n)) != 100_000
                                      for n in got):
                problems.append(f"apply kill {i}: {dest} exists but is incomplete")
    return killed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int,
                        default=200 if os.environ.get("LAYERFS_SOAK") == "1" else 10)
    args = parser.parse_args()
    harness.start(600 if args.rounds <= 10 else 7200)
    problems = []
    rnd = random.Random(int(os.environ.get("LAYERFS_SEED", "1")))
    with harness.temp_dir() as tmp:
        lowers = build_lowers(tmp)
        left = fsynced = 0
        with harness.lowers_unchanged(lowers, problems):
            for r in range(args.rounds):
                temps, checked = crash_round(tmp, lowers, rnd, r, problems)
                left += temps
                fsynced += checked
        killed = commit_apply_kills(tmp, harness.LAYERCTL, rnd, args.rounds, problems)
        print(f"{args.rounds} daemon kills survived: {fsynced} fsynced files checked, "
              f"{left} work-dir temporaries cleaned at remount; {killed} commit/apply runs "
              f"killed midway")
    harness.check(problems[:100])


if __name__ == "__main__":
    main()
