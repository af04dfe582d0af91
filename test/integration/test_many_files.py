"""No fd per inode: a find over 100,000 files through the mount works with
the daemon limited to 1,024 open files, and every file is seen.
"""
import os
import resource
import subprocess

import harness

FILES = 100_000


def limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def main():
    harness.start(600)
    problems = []
    with harness.temp_dir() as tmp:
        top, bottom, mnt = (os.path.join(tmp, n) for n in ("top", "bottom", "mnt"))
        os.mkdir(mnt)
        per_dir = 500
        for layer, share in ((top, range(0, FILES, 2)), (bottom, range(1, FILES, 2))):
            for i in share:
                d = os.path.join(layer, f"d{i // per_dir:04d}", f"s{(i // 50) % 10}")
                if i % 50 in (0, 1):
                    os.makedirs(d, exist_ok=True)
                open(os.path.join(d, f"f{i}"), "w").close()
        with harness.layerfs(mnt, [top, bottom], preexec=limit_fds) as proc:
            r = subprocess.run(["find", mnt, "-type", "f"], capture_output=True, text=True,
                               timeout=500)
            seen = len(r.stdout.splitlines())
            if r.returncode != 0:
                problems.append(f"find failed: {r.stderr[:300]}")
            if seen != FILES:
                problems.append(f"find saw {seen} files, expected {FILES}")
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            print(f"find saw {seen} files; daemon holds {fds} fds")
            if fds > 1024:
                problems.append(f"daemon holds {fds} fds")
    harness.check(problems)


if __name__ == "__main__":
    main()
