"""Real workloads on the writable layer.

- A real tarball (built here from /usr/share) extracted into a mount that
  already has lower content, then verified with `tar --compare` through the
  mount, and again after a remount.
- Several mounts sharing the same lowers, written concurrently: each sees
  only its own changes and the lowers stay byte-identical.
"""
import contextlib
import os
import subprocess
import threading

import harness
import stacks


def tar_workload(tmp, lowers, problems):
    src = "/usr/share"
    parts = [p for p in ("doc", "man/man1", "common-licenses", "zoneinfo", "perl5")
             if os.path.isdir(os.path.join(src, p))]
    tarball = os.path.join(tmp, "share.tar")
    # The tarball is the reference, whatever the system changes while it is
    # made (a package install: tar exits 1 for "file changed as we read it").
    r = subprocess.run(["tar", "-C", src, "-cf", tarball, "--xattrs",
                        "--warning=no-file-changed", "--ignore-failed-read"] + parts,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"tar -c of {src} failed: {r.stderr[:300]}")
    u, w, m = (os.path.join(tmp, "tar", x) for x in ("u", "w", "m"))
    for d in (u, w, m):
        os.makedirs(d)
    for attempt in ("fresh", "remounted"):
        with harness.layerfs(m, lowers, u, w):
            target = os.path.join(m, "usr/share")
            os.makedirs(target, exist_ok=True)
            if attempt == "fresh":
                r = subprocess.run(["tar", "-C", target, "-xf", tarball, "--xattrs"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    problems.append(f"tar -x failed: {r.stderr[:300]}")
            r = subprocess.run(["tar", "-C", target, "--compare", "-f", tarball],
                               capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"tar --compare ({attempt}) failed: {r.stdout[:300]}{r.stderr[:300]}")
            count = sum(len(f) for _, _, f in os.walk(target))
    print(f"tar workload: {count} files extracted and compared")


def concurrent_mounts(tmp, lowers, problems, n=3):
    mounts = []
    for i in range(n):
        u, w, m = (os.path.join(tmp, f"c{i}", x) for x in ("u", "w", "m"))
        for d in (u, w, m):
            os.makedirs(d)
        mounts.append((u, w, m))
    errors = []

    def work(i, m):
        try:
            for k in range(200):
                with open(os.path.join(m, "etc/passwd"), "a") as f:
                    f.write(f"mount {i} line {k}\n")
                p = os.path.join(m, f"usr/lib/x/own-{i}-{k % 20}")
                with open(p, "w") as f:
                    f.write(str(i))
                if k % 50 == 0:
                    os.unlink(os.path.join(m, f"usr/lib/x/lib{10 + k // 50}.so"))
            os.rename(os.path.join(m, "srv"), os.path.join(m, f"srv-{i}"))
        except OSError as e:
            errors.append(f"mount {i}: {e}")

    with all_mounted(lowers, mounts):
        threads = [threading.Thread(target=work, args=(i, m)) for i, (_, _, m) in enumerate(mounts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (_, _, m) in enumerate(mounts):
            lines = open(os.path.join(m, "etc/passwd")).read().splitlines()
            foreign = [l for l in lines if l.startswith("mount ") and not l.startswith(f"mount {i} ")]
            if foreign or len([l for l in lines if l.startswith(f"mount {i} ")]) != 200:
                problems.append(f"mount {i} sees others' writes or lost its own")
            names = set(os.listdir(m))
            if f"srv-{i}" not in names or "srv" in names or any(
                    f"srv-{j}" in names for j in range(n) if j != i):
                problems.append(f"mount {i} root: {sorted(names)}")
            own = [x for x in os.listdir(os.path.join(m, "usr/lib/x")) if x.startswith("own-")]
            if sorted(own) != sorted(f"own-{i}-{k}" for k in range(20)):
                problems.append(f"mount {i} usr/lib/x has {sorted(own)[:5]}...")
    problems.extend(errors)


@contextlib.contextmanager
def all_mounted(lowers, mounts):
    with contextlib.ExitStack() as stack:
        for u, w, m in mounts:
            stack.enter_context(harness.layerfs(m, lowers, u, w))
        yield


def main():
    harness.start(900)
    problems = []
    with harness.temp_dir() as tmp:
        lowers = stacks.build_kernel_form(os.path.join(tmp, "layers"))
        with harness.lowers_unchanged(lowers, problems):
            tar_workload(tmp, lowers, problems)
            concurrent_mounts(tmp, lowers, problems)
    harness.check(problems)


if __name__ == "__main__":
    main()
