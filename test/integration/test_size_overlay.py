"""layerctl size over a real upper dir, against sizes computed here.

A kernel overlayfs mount writes the upper (new files, a copy-up that grew,
a sparse file, hardlinks, whiteouts, an opaque dir); the expected numbers
are computed in Python from the upper and the lowers as `docker ps -s`
counts them: apparent bytes of non-directories, each inode once; on-disk
bytes from st_blocks; copied-up when the path exists in the lowers' view;
virtual = every lower's own size + the writable size. The live-mount form
is checked on a writable layerfs mount, and bad input on a read-only one.
"""
import json
import os
import shutil
import stat
import subprocess

import harness
from test_diff_oracle import write


def human(n):
    """docker's units.HumanSizeWithPrecision(n, 3)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    size, i = float(n), 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def tree_size(root):
    """(apparent, disk, {rel path: (bytes, is_dir)}) of the non-dirs, inodes once."""
    seen, total, disk, per_path = set(), 0, 0, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if n.startswith(".wh."):
                continue
            total += st.st_size
            disk += st.st_blocks * 512
            per_path["/" + os.path.relpath(p, root)] = st.st_size
    return total, disk, per_path


def layerctl(*args):
    return subprocess.run([harness.LAYERCTL, *args], capture_output=True, timeout=120)


def build(d):
    l1, l2 = os.path.join(d, "l1"), os.path.join(d, "l2")
    write(os.path.join(l2, "etc/conf"), b"c" * 1000)
    write(os.path.join(l2, "var/lib/db"), b"d" * 300_000)
    write(os.path.join(l2, "opt/x/y"), b"y" * 5000)
    write(os.path.join(l1, "etc/top"), b"t" * 77)
    os.link(os.path.join(l2, "etc/conf"), os.path.join(l2, "etc/conf.link"))
    return [l1, l2]


def actions(m):
    j = lambda *p: os.path.join(m, *p)
    write(j("new/big"), os.urandom(2_000_000))
    write(j("new/small"), b"s" * 123)
    os.link(j("new/big"), j("new/big.again"))       # counted once
    with open(j("var/lib/db"), "ab") as f:          # copy-up that grew
        f.write(b"more" * 1000)
    with open(j("sparse"), "wb") as f:
        f.truncate(64 << 20)
    os.unlink(j("etc/conf"))                         # whiteout: 0 bytes
    shutil.rmtree(j("opt/x"))
    os.mkdir(j("opt/x"))                             # opaque dir
    write(j("opt/x/z"), b"z" * 10)


def check_numbers(problems, lowers, upper, old_view, js, label):
    size, disk, per_path = tree_size(upper)
    copied = sum(b for p, b in per_path.items() if os.path.lexists(old_view + p))
    virtual = size
    for lower in lowers:
        virtual += tree_size(lower)[0]
    expected = {"SizeRw": size, "SizeRootFs": virtual, "DiskUsage": disk,
                "CopiedUp": copied, "New": size - copied}
    for k, v in expected.items():
        if js.get(k) != v:
            problems.append(f"{label}: {k} = {js.get(k)}, expected {v}")
    return expected


def main():
    harness.start(240)
    problems = []
    with harness.temp_dir() as d:
        lowers = build(d)
        upper, work, mnt, old = (os.path.join(d, x) for x in ("u", "w", "m", "old"))
        for p in (upper, work, mnt, old):
            os.makedirs(p)
        with harness.kernel_overlay(mnt, lowers, upper, work):
            actions(mnt)
        flags = ["--lower", ":".join(lowers), "--upper", upper]
        r = layerctl("size", "--json", "--top", "4", *flags)
        if r.returncode:
            harness.check([f"size failed: {r.stderr!r}"])
        js = json.loads(r.stdout)
        with harness.kernel_overlay(old, lowers):
            exp = check_numbers(problems, lowers, upper, old, js, "kernel upper")
        top = [(t["Path"], t["Kind"], t["Sparse"]) for t in js["Top"]]
        want = [("/sparse", "new", True), ("/new", "new", False),
                ("/new/big", "new", False), ("/var", "copied-up", False)]
        if top != want:
            problems.append(f"--top 4: {top}, expected {want}")
        text = layerctl("size", "--top", "4", *flags).stdout.decode().splitlines()
        first = f"{human(exp['SizeRw'])} (virtual {human(exp['SizeRootFs'])})"
        if not text or text[0] != first:
            problems.append(f"text: first line {text[:1]}, expected {first!r}")
        split = f"copied-up {human(exp['CopiedUp'])}, new {human(exp['New'])}"
        if split not in text:
            problems.append(f"text: no line {split!r} in {text}")
        if not any(l.endswith("/sparse") and "new,sparse" in l for l in text):
            problems.append(f"text: /sparse not marked new,sparse: {text}")

    # The live-mount form, on layerfs (writable and read-only).
    with harness.temp_dir() as d:
        lowers = build(d)
        upper, work, mnt, ro = (os.path.join(d, x) for x in ("u", "w", "m", "ro"))
        for p in (upper, work, mnt, ro):
            os.makedirs(p)
        try:
            with harness.layerfs(mnt, lowers, upper, work):
                write(os.path.join(mnt, "hello"), b"h" * 4242)
                live = layerctl("size", "--json", mnt)
                flags = layerctl("size", "--json", "--lower", ":".join(lowers), "--upper", upper)
                if live.returncode or json.loads(live.stdout) != json.loads(flags.stdout):
                    problems.append(f"size MOUNTPOINT differs: {live.stdout!r} {live.stderr!r}")
                elif json.loads(live.stdout)["SizeRw"] != 4242:
                    problems.append(f"size MOUNTPOINT: {live.stdout!r}")
        except RuntimeError as e:
            print(f"note: writable layerfs unavailable ({e}); live form not tested")
        with harness.layerfs(ro, lowers):
            r = layerctl("size", ro)
            if r.returncode == 0 or r.stdout or b"read-only" not in r.stderr:
                problems.append(f"size of a read-only mount: {r.returncode} {r.stdout!r} {r.stderr!r}")
        for args in (["size"], ["size", "--upper", upper],
                     ["size", "--lower", d + "/nope", "--upper", upper],
                     ["size", "--top", "x", "--lower", lowers[0], "--upper", upper]):
            r = layerctl(*args)
            err = r.stderr.decode().strip().splitlines()
            if r.returncode == 0 or r.stdout or not err or not err[-1]:
                problems.append(f"bad input {args}: rc={r.returncode} out={r.stdout!r} err={err}")
            elif len(err) == 1 and not err[0].startswith("layerctl: "):
                problems.append(f"bad input {args}: {err}")
    harness.check(problems)


if __name__ == "__main__":
    main()
