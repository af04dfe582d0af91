"""Load: concurrent stressors on one mount while a second mount shares its
lowers, for a bounded time; no corruption, no crash, no deadlock, bounded
daemon memory, and neither mount sees the other's changes.

On mount A: fio with several jobs writing and reading back with --verify
(data corruption fails it), stress-ng's filesystem stressors (each checks
its own results; a failed stressor fails the run), and, when LAYERFS_FSSTRESS
names xfstests' fsstress binary, fsstress -p 4. On mount B, at the same
time: fio --verify on copy-ups of the shared lower files. Every workload is
bounded in time (LAYERFS_SOAK=1 makes each run 10x longer). Daemon RSS is
sampled throughout; afterwards both mounts must still answer, unmount and
exit 0, the lowers must be unchanged and A's files must be absent from B.
"""
import os
import re
import shutil
import subprocess
import threading
import time

import harness

SOAK = os.environ.get("LAYERFS_SOAK") == "1"
SECONDS = 400 if SOAK else 40
RSS_LIMIT_KB = 400 * 1024  # a release daemon; ASan's shadow and quarantine need more


def sanitized(program):
    """Whether `program` (the daemon) is an AddressSanitizer build."""
    path = shutil.which(program) or program
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
FSSTRESS = os.environ.get("LAYERFS_FSSTRESS", "")

STRESSORS = ["dir", "dentry", "filename", "link", "symlink", "rename", "xattr", "chmod",
             "utime", "fallocate", "seek", "getdent", "lockf", "flock", "iomix"]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = pids, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max([self.peak] + [rss_kb(p) for p in self.pids])
            time.sleep(0.2)


def fio(directory, name, seconds, extra=()):
    os.makedirs(directory, exist_ok=True)
    return subprocess.Popen(
        ["fio", f"--name={name}", f"--directory={directory}", "--numjobs=3", "--size=24m",
         "--bs=4k", "--rw=randrw", "--verify=crc32c", "--verify_fatal=1",
         "--do_verify=1", "--ioengine=psync", f"--runtime={seconds}", "--group_reporting",
         "--output-format=terse"] + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main():
    harness.start(SECONDS * 6 + 240)
    for tool in ("fio", "stress-ng"):
        if not shutil.which(tool):
            harness.skip(f"no {tool}")
    problems = []
    with harness.temp_dir() as tmp:
        lower = os.path.join(tmp, "lower")
        os.makedirs(os.path.join(lower, "shared"))
        for i in range(3):
            with open(os.path.join(lower, "shared", f"b.{i}.0"), "wb") as f:
                f.write(os.urandom(24 << 20))
        dirs = {n: os.path.join(tmp, n) for n in ("ua", "wa", "ma", "ub", "wb", "mb")}
        for d in dirs.values():
            os.makedirs(d)
        with harness.lowers_unchanged([lower], problems), \
                harness.layerfs(dirs["ma"], [lower], dirs["ua"], dirs["wa"]) as a, \
                harness.layerfs(dirs["mb"], [lower], dirs["ub"], dirs["wb"]) as b:
            sampler = RssSampler([a.pid, b.pid])
            sampler.start()
            jobs = {
                "fio A": fio(os.path.join(dirs["ma"], "fio"), "a", SECONDS),
                # B rewrites the shared lower files: copy-ups under load
                "fio B (copy-ups)": fio(os.path.join(dirs["mb"], "shared"), "b", SECONDS,
                                        ["--filename_format=b.$jobnum.$filenum"]),
                "stress-ng A": subprocess.Popen(
                    ["stress-ng", "--temp-path", os.path.join(dirs["ma"]), "--timeout",
                     f"{SECONDS}s", "--metrics-brief", "--verify"] +
                    [x for s in STRESSORS for x in (f"--{s}", "1")],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            }
            if FSSTRESS and os.access(FSSTRESS, os.X_OK):
                jobs["fsstress A"] = subprocess.Popen(
                    [FSSTRESS, "-d", os.path.join(dirs["ma"], "fsstress"), "-p", "4",
                     "-n", "1000000", f"--duration={SECONDS}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            report = []
            for name, p in jobs.items():
                try:
                    out, err = p.communicate(timeout=SECONDS * 4 + 60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, err = p.communicate()
                    problems.append(f"{name}: did not finish (deadlock?)")
                    continue
                if p.returncode != 0:
                    problems.append(f"{name}: exit {p.returncode}: "
                                    f"{(out + err).strip().splitlines()[-3:]}")
                if name.startswith("fio"):
                    fields = out.strip().splitlines()[-1].split(";") if out.strip() else []
                    # terse v3: read total IOs at field 7, write total IOs at field 48
                    if len(fields) > 48:
                        report.append(f"{name}: {int(fields[7]) + int(fields[48])} I/Os verified")
                elif name.startswith("stress-ng"):
                    ops = sum(int(m) for m in re.findall(
                        r"stress-ng: (?:info|metrc): +\[\d+\] +\S+ +(\d+) ", err))
                    report.append(f"{name}: {ops} bogo ops over {len(STRESSORS)} stressors")
                else:
                    report.append(f"{name}: exit {p.returncode}")
            sampler.stop.set()
            sampler.join()
            for m in (dirs["ma"], dirs["mb"]):
                try:
                    os.listdir(m)
                except OSError as e:
                    problems.append(f"{m} stopped answering: {e}")
            if os.path.exists(os.path.join(dirs["mb"], "fio")):
                problems.append("mount B sees mount A's files")
            limit = RSS_LIMIT_KB * (4 if sanitized(harness.LAYERFS) else 1)
            if sampler.peak > limit:
                problems.append(f"daemon RSS peaked at {sampler.peak // 1024} MiB "
                                f"(limit {limit // 1024} MiB)")
            report.append(f"peak daemon RSS {sampler.peak // 1024} MiB "
                          f"(limit {limit // 1024} MiB)")
        for line in report:
            print(line)
    harness.check(problems)


if __name__ == "__main__":
    main()
