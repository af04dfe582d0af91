"""The Debian package, end to end: built with dpkg-buildpackage from a copy
of the source tree (the tree itself is never written), checked by lintian
(no errors), installed, used from its installed paths (--version, a mount
and layerctl diff, the fstab and systemd examples through mount -a -T in a
private mount namespace, man layerfs, bash completion loaded on demand),
then purged: nothing of it is left.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys

import harness
import test_manpages

SOURCE_ROOT = test_manpages.SOURCE_ROOT
EXAMPLES = "/usr/share/doc/layerfs/examples"
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def project_version():
    with open(os.path.join(SOURCE_ROOT, "meson.build")) as f:
        return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)


def installed(package):
    r = run(["dpkg-query", "-W", "-f=${Status}", package])
    return r.returncode == 0 and "ok installed" in r.stdout


def source_files():
    """The tree's files, tracked and untracked but not ignored, relative."""
    r = run(["git", "-C", SOURCE_ROOT, "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"])
    if r.returncode != 0:
        harness.skip(f"not a git checkout: {r.stderr.strip()}")
    return [p for p in r.stdout.split("\0")
            if p and os.path.lexists(os.path.join(SOURCE_ROOT, p))]


def copy_tree(dest):
    for rel in source_files():
        src, dst = os.path.join(SOURCE_ROOT, rel), os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def build(problems, tmp):
    """Builds the package in a copy under tmp; the path of the .deb or None."""
    src = os.path.join(tmp, "src", "layerfs-" + project_version())
    copy_tree(src)
    unmet = run(["dpkg-checkbuilddeps"], cwd=src)
    if unmet.returncode != 0:
        harness.skip(f"build dependencies missing: {unmet.stderr.strip()}")
    log_path = os.path.join(tmp, "build.log")
    # The unit tests are a test of their own in the same run: nocheck.
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
    with open(log_path, "w") as log:
        r = subprocess.run(["nice", "-n", "10", "dpkg-buildpackage", "-us", "-uc", "-b"],
                           cwd=src, stdout=log, stderr=subprocess.STDOUT, env=env,
                           timeout=1200)
    if r.returncode != 0:
        with open(log_path) as log:
            tail = log.readlines()[-40:]
        problems.append(f"dpkg-buildpackage exited {r.returncode}:\n" + "".join(tail))
        return None
    debs = glob.glob(os.path.join(tmp, "src", "layerfs_*.deb"))
    if len(debs) != 1:
        problems.append(f"dpkg-buildpackage made {debs}, not one layerfs_*.deb")
        return None
    return debs[0]


def check_deb(problems, deb):
    version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()
    if version != project_version():
        problems.append(f"package version {version}, project version {project_version()}")
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    if not re.search(r"(^|, )fuse3(\s|,|$)", depends):
        problems.append(f"the package does not depend on fuse3: {depends.strip()}")
    contents = {line.split()[-1].lstrip(".") for line in
                run(["dpkg-deb", "-c", deb]).stdout.splitlines()}
    for path in ("/usr/bin/layerfs", "/usr/bin/layerctl", "/usr/share/man/man1/layerfs.1.gz",
                 "/usr/share/man/man1/layerctl.1.gz",
                 "/usr/share/bash-completion/completions/layerfs",
                 "/usr/share/bash-completion/completions/layerctl",
                 f"{EXAMPLES}/fstab", f"{EXAMPLES}/srv-layerfs-merged.mount",
                 "/usr/share/doc/layerfs/copyright"):
        if path not in contents:
            problems.append(f"the package lacks {path}")
    print(f"package: {os.path.basename(deb)}, {os.path.getsize(deb)} bytes")
    r = run(["lintian", "--display-info", "--tag-display-limit", "0", deb], timeout=600)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    for l in lines:
        print("lintian:", l)
    errors = [l for l in lines if l.startswith("E:")]
    if errors or r.returncode not in (0, 2):  # 2: tags of a lower severity only
        problems.append(f"lintian (exit {r.returncode}): {errors or r.stderr.strip()}")
    return {p for p in contents if not p.endswith("/")}


def check_installed_programs(problems, tmp):
    for prog in ("layerfs", "layerctl"):
        r = run([f"/usr/bin/{prog}", "--version"])
        if r.stdout.strip() != f"{prog} {project_version()}":
            problems.append(f"/usr/bin/{prog} --version: {r.stdout.strip()!r} "
                            f"{r.stderr.strip()!r}")
    low, up, work, mnt = (os.path.join(tmp, n) for n in ("low", "up", "work", "mnt"))
    for d in (low, up, work, mnt):
        os.mkdir(d)
    with open(os.path.join(low, "from-lower"), "w") as f:
        f.write("lower\n")
    r = run(["/usr/bin/layerfs", "-o", harness.layerfs_options([low], up, work), mnt], 60)
    try:
        if r.returncode != 0 or not harness.is_mounted(mnt):
            problems.append(f"/usr/bin/layerfs did not mount: exit {r.returncode}: "
                            f"{r.stderr.strip()}")
            return
        with open(os.path.join(mnt, "new"), "w") as f:
            f.write("new\n")
        diff = run(["/usr/bin/layerctl", "diff", mnt])
        if diff.stdout.split("\n") != ["A /new", ""]:
            problems.append(f"layerctl diff on the mount: {diff.stdout!r} {diff.stderr!r}")
    finally:
        harness.unmount(mnt)
    if not os.path.exists(os.path.join(up, "new")):
        problems.append("a file written through the installed layerfs is not in the upper")


# Runs in a private mount namespace: mounts every line of the fstab $1,
# shows what $2 holds, writes through it, and always unmounts.
NAMESPACE_SCRIPT = r'''
trap 'umount "$2" 2>/dev/null' EXIT
mount -a -T "$1" || exit 1
findmnt -n -o FSTYPE,SOURCE --mountpoint "$2"
cat "$2/from-top" "$2/from-base"
echo written > "$2/new"
umount "$2" && echo unmounted
'''


def kill_leftover_daemons(tmp):
    """Ends a daemon a failed namespace run may have left (its args name tmp)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"layerfs") and any(tmp.encode() in a for a in args):
            os.kill(int(pid), signal.SIGKILL)


def mount_example(problems, tmp, name, fstab_line):
    """Mounts one example line, /srv/layerfs moved under tmp, with mount -a -T."""
    root = os.path.join(tmp, name)
    line = fstab_line.replace("/srv/layerfs", root)
    for d in ("top", "base", "upper", "work", "merged"):
        os.makedirs(os.path.join(root, d))
    for layer in ("top", "base"):
        with open(os.path.join(root, layer, "from-" + layer), "w") as f:
            f.write(layer + "\n")
    fstab, merged = os.path.join(root, "fstab"), os.path.join(root, "merged")
    with open(fstab, "w") as f:
        f.write(line + "\n")
    try:
        r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT,
                 "sh", fstab, merged], 60)
    finally:
        kill_leftover_daemons(tmp)
    want = ["fuse.layerfs layerfs", "top", "base", "unmounted"]
    if r.returncode != 0 or r.stdout.split() != " ".join(want).split():
        problems.append(f"{name}: mount -a -T with {line!r}: exit {r.returncode}, "
                        f"{r.stdout!r} {r.stderr.strip()!r}")
    if not os.path.exists(os.path.join(root, "upper", "new")):
        problems.append(f"{name}: the file written through the mount is not in the upper")
    if harness.is_mounted(merged):
        problems.append(f"{name}: the mount leaked out of its namespace")
        harness.unmount(merged)


def check_boot_examples(problems, tmp):
    with open(f"{EXAMPLES}/fstab") as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    if len(lines) != 1 or lines[0].split()[2] != "fuse.layerfs":
        problems.append(f"examples/fstab: expected one fuse.layerfs line, got {lines}")
        return
    mount_example(problems, tmp, "fstab", lines[0])

    unit_path = f"{EXAMPLES}/srv-layerfs-merged.mount"
    if shutil.which("systemd-analyze"):
        r = run(["systemd-analyze", "verify", unit_path])
        if r.returncode != 0:
            problems.append(f"systemd-analyze verify {unit_path}: {r.stderr.strip()}")
    else:
        print("systemd-analyze not found: the unit's syntax is not verified")
    unit = {}
    with open(unit_path) as f:
        for l in f:
            if "=" in l and not l.startswith("#"):
                key, value = l.strip().split("=", 1)
                unit[key] = value
    # what systemd runs for a .mount unit: mount What Where -t Type -o Options
    mount_example(problems, tmp, "unit", " ".join(
        [unit.get("What", "?"), unit.get("Where", "?"), unit.get("Type", "?"),
         unit.get("Options", "?"), "0", "0"]))


def check_man_and_completion(problems):
    env = dict(os.environ, MANPATH="/usr/share/man", MANWIDTH="100", LC_ALL="C.UTF-8")
    r = run(["man", "-P", "cat", "layerfs"], env=env)
    text = re.sub(r".\x08", "", r.stdout)
    if r.returncode != 0 or test_manpages.unshown_options(text):
        problems.append(f"man layerfs (installed): exit {r.returncode}, does not show "
                        f"{test_manpages.unshown_options(text)}")
    if run(["man", "-P", "cat", "layerctl"], env=env).returncode != 0:
        problems.append("man layerctl (installed) does not render")
    script = ("source /usr/share/bash-completion/bash_completion; for c in layerfs layerctl; "
              "do _completion_loader $c; complete -p $c; done")
    r = run(["bash", "-c", script])
    want = ["complete -F _layerfs layerfs", "complete -F _layerctl layerctl"]
    if r.stdout.splitlines() != want:
        problems.append(f"bash completion not loaded from the package: {r.stdout!r} "
                        f"{r.stderr.strip()!r}")


def purge(problems, files):
    r = run(["dpkg", "--purge", "layerfs"], 300, env=APT_ENV)
    if r.returncode != 0:
        problems.append(f"dpkg --purge layerfs: {r.stderr.strip()}")
    if installed("layerfs"):
        problems.append("the package is still installed after the purge")
    left = sorted(p for p in files if os.path.lexists(p) and not os.path.isdir(p))
    if left:
        problems.append(f"left after the purge: {left}")


def on_term(signum, frame):
    raise TimeoutError("terminated")  # meson's timeout: purge on the way out


def main():
    harness.start(1200)
    signal.signal(signal.SIGTERM, on_term)
    for tool in ("dpkg-buildpackage", "dh", "lintian", "git", "man", "unshare"):
        if not shutil.which(tool):
            harness.skip(f"{tool} not installed")
    if not os.path.exists("/usr/share/bash-completion/bash_completion"):
        harness.skip("bash-completion not installed")
    if installed("layerfs"):
        harness.skip("a layerfs package is installed already; it is left alone")
    problems = []
    with harness.temp_dir() as tmp:
        deb = build(problems, tmp)
        if deb is None:
            harness.check(problems)
        files = check_deb(problems, deb)
        try:
            r = run(["dpkg", "-i", deb], 300, env=APT_ENV)
            if r.returncode != 0:
                problems.append(f"dpkg -i: {r.stdout.strip()} {r.stderr.strip()}")
            else:
                check_installed_programs(problems, tmp)
                check_boot_examples(problems, tmp)
                check_man_and_completion(problems)
        finally:
            purge(problems, files)
    harness.check(problems)


if __name__ == "__main__":
    main()
