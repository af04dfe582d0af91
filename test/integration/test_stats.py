"""layerctl stats against a workload whose effects are known exactly.

Over a lower of files with known sizes, after `layerctl stats --reset`:
appends to five lower files and a chmod of a sixth (six copy-ups, whose
data bytes are the six sizes), unlinks of three more and an rmdir of a
lower dir (four whiteouts), and ten creates. The statistics must count
the copy-ups, their bytes and the whiteouts exactly, and at least the
requests the workload must have sent (create, unlink, rmdir, lookup);
every latency line is ordered (p50 <= p99 <= max). Then --reset zeroes
them, the table form has its header, and a mount with stats=0 makes
`layerctl stats` fail with one line.
"""
import json
import os
import subprocess

import harness


def layerctl(*args):
    return subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=60)


def stats(mnt, *flags):
    r = layerctl("stats", mnt, "--json", *flags)
    if r.returncode:
        raise RuntimeError(f"layerctl stats: {r.stderr.decode().strip()}")
    return json.loads(r.stdout)


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as tmp:
        lower, upper, work, mnt = harness.make_dirs(tmp, "l", "u", "w", "m")
        sizes = {f"f{i}": 1000 * i + 7 for i in range(1, 10)}
        for name, size in sizes.items():
            with open(os.path.join(lower, name), "wb") as f:
                f.write(os.urandom(size))
        os.makedirs(os.path.join(lower, "emptydir"))
        with harness.layerfs(mnt, [lower], upper, work):
            stats(mnt, "--reset")
            for name in ("f1", "f2", "f3", "f4", "f5"):
                with open(os.path.join(mnt, name), "ab") as f:
                    f.write(b"more")
            os.chmod(os.path.join(mnt, "f6"), 0o600)
            for name in ("f7", "f8", "f9"):
                os.unlink(os.path.join(mnt, name))
            os.rmdir(os.path.join(mnt, "emptydir"))
            for i in range(10):
                with open(os.path.join(mnt, f"new{i}"), "wb") as f:
                    f.write(b"n")
            s = stats(mnt, "--reset")
            want_bytes = sum(sizes[f"f{i}"] for i in range(1, 7))
            got = (s["copy_ups"]["count"], s["copy_ups"]["bytes"], s["whiteouts"])
            print(f"copy-ups {got[0]} ({got[1]} bytes, {s['copy_ups']['seconds']:.4f} s), "
                  f"whiteouts {got[2]}; requests: "
                  + ", ".join(f"{k} {v['count']}" for k, v in s["ops"].items()))
            if got != (6, want_bytes, 4):
                problems.append(f"copy-ups/bytes/whiteouts {got}, want (6, {want_bytes}, 4)")
            for op, least in (("create", 10), ("unlink", 3), ("rmdir", 1), ("lookup", 1)):
                n = s["ops"].get(op, {}).get("count", 0)
                if n < least:
                    problems.append(f"{op}: {n} requests counted, the workload sent {least}")
            for op, v in s["ops"].items():
                if not v["p50_us"] <= v["p99_us"] <= v["max_us"] or v["errors"] > v["count"]:
                    problems.append(f"{op}: inconsistent line {v}")
            after = stats(mnt)
            if after["copy_ups"]["count"] or after["whiteouts"] or "create" in after["ops"]:
                problems.append(f"--reset did not zero the statistics: {after}")
            table = layerctl("stats", mnt)
            if not table.stdout.startswith(b"REQUEST ") or b"copy-ups:" not in table.stdout:
                problems.append(f"table form: {table.stdout[:200]!r}")
        with harness.layerfs(mnt, [lower], upper, work, ["stats=0"]):
            r = layerctl("stats", mnt)
            err = r.stderr.decode()
            if r.returncode != 1 or err.count("\n") != 1 or "stats=0" not in err:
                problems.append(f"stats=0: exit {r.returncode}, {err!r}")
    harness.check(problems)


if __name__ == "__main__":
    main()
