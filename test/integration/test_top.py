"""layerctl top: the paths, and the mounts, that grow while it looks.

While one writer appends 64 KiB at a time to /logs/app.log and another
rewrites the same 4 KiB of /db/page (no growth), `layerctl top MNT --once
--json` must rank /logs/app.log first among files with a rate above zero,
show /db/page at zero, and give /logs/ at least the log's rate; `layerctl
top --once --json` must list the mount with a rate above zero. A chmod of
a 1 MiB lower file (a copy-up) counts its 1 MiB. Bad input (an interval of
0, a directory that is no layerfs mount) fails with one line.
"""
import json
import os
import subprocess
import threading
import time

import harness

MiB = 1 << 20


def layerctl(*args):
    return subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=60)


def top_json(*args):
    r = layerctl("top", *args, "--once", "--json", "--interval", "1")
    if r.returncode:
        raise RuntimeError(f"layerctl top {args}: {r.stderr.decode().strip()}")
    return json.loads(r.stdout)


def writers(mnt, stop):
    os.makedirs(os.path.join(mnt, "logs"))
    os.makedirs(os.path.join(mnt, "db"))
    page = os.path.join(mnt, "db/page")
    with open(page, "wb") as f:
        f.write(b"p" * 4096)
    chunk = os.urandom(64 * 1024)

    def log():
        while not stop.is_set():  # open, append, close: data reaches the daemon
            with open(os.path.join(mnt, "logs/app.log"), "ab") as f:
                f.write(chunk)
            time.sleep(0.02)

    def rewrite():
        while not stop.is_set():
            with open(page, "r+b") as f:
                f.write(os.urandom(4096))
            time.sleep(0.02)

    threads = [threading.Thread(target=t) for t in (log, rewrite)]
    for t in threads:
        t.start()
    return threads


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as tmp:
        lower, upper, work, mnt = harness.make_dirs(tmp, "l", "u", "w", "m")
        with open(os.path.join(lower, "big"), "wb") as f:
            f.write(os.urandom(MiB))
        with harness.layerfs(mnt, [lower], upper, work):
            stop = threading.Event()
            threads = writers(mnt, stop)
            try:
                time.sleep(0.3)
                paths = top_json(mnt)["paths"]
                mounts = top_json()["mounts"]
            finally:
                stop.set()
                for t in threads:
                    t.join()
            files = [p for p in paths if not p["dir"]]
            rate = {p["path"]: p["bytes_per_second"] for p in paths}
            print("top:", ", ".join(f"{p['path']} {p['bytes_per_second']:.0f} B/s"
                                    for p in paths[:6]))
            if not files or files[0]["path"] != "/logs/app.log" or files[0]["bytes_per_second"] <= 0:
                problems.append(f"the growing log is not first: {files[:3]}")
            if rate.get("/db/page", 0) != 0:
                problems.append(f"/db/page grows at {rate.get('/db/page')} B/s: it does not grow")
            if rate.get("/logs/", 0) < rate.get("/logs/app.log", 0):
                problems.append(f"/logs/ ({rate.get('/logs/')}) below its file's rate")
            ours = [m for m in mounts if m["mountpoint"] == os.path.realpath(mnt)]
            if not ours or ours[0]["bytes_per_second"] <= 0:
                problems.append(f"the mount is not listed as growing: {mounts}")
            os.chmod(os.path.join(mnt, "big"), 0o600)  # copy-up of 1 MiB
            big = {p["path"]: p["bytes"] for p in top_json(mnt)["paths"]}.get("/big")
            if big != MiB:
                problems.append(f"the copy-up of /big counts {big} bytes, want {MiB}")
            for args, what in ((["top", mnt, "--once", "--interval", "0"], "interval 0"),
                               (["top", tmp, "--once"], "not a mount")):
                r = layerctl(*args)
                if r.returncode != 1 or r.stderr.decode().count("\n") != 1:
                    problems.append(f"{what}: exit {r.returncode}, {r.stderr!r}")
    harness.check(problems)


if __name__ == "__main__":
    main()
