#!/usr/bin/env python3
"""FUSE requests per file for the metadata workloads, against syscalls.

For each workload (create, lstat of lower files cold, tar -x, unlink of
lower files, chmod -R of lower files), mounts layerfs fresh over a
three-layer stack, resets its statistics, runs the workload, and prints the
requests the daemon served per file, by type, next to the system calls the
workload itself made per file (strace -f -c, when strace is installed).
A request the kernel makes beyond the one per syscall is a round trip that
kernel overlayfs does not pay. Needs root.

  bench/requests_per_op.py [--files 2000] [--layerfs PATH] [--layerctl PATH]
                           [--options io_uring=on]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def strace_total(argv):
    r = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stdout"] + argv,
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.strip().endswith("total"):
            return int(line.split()[3])
    return None


def syscalls(code):
    """System calls the Python snippet `code` makes beyond Python's own
    start (strace -c), or None without strace."""
    if not shutil.which("strace"):
        return None
    ran, idle = strace_total([sys.executable, "-c", code]), strace_total([sys.executable, "-c", "pass"])
    return None if ran is None or idle is None else ran - idle


def run_python(code):
    subprocess.run([sys.executable, "-c", code], check=True)


def build_stack(base, n):
    layers = [os.path.join(base, f"l{i}") for i in range(3)]
    for l in layers:
        os.makedirs(os.path.join(l, "many"))
    for i in range(n):
        with open(os.path.join(layers[i % 3], "many", f"f{i}"), "wb") as f:
            f.write(b"x" * 100)
    return layers


# (label, Python code run in a child on the mount {m}, cold caches)
WORKLOADS = [
    ("create 4 KiB files", "import os\nos.mkdir('{m}/new')\nfor i in range({n}):\n"
     " fd = os.open(f'{m}/new/{{i}}', os.O_CREAT | os.O_WRONLY, 0o644)\n"
     " os.write(fd, bytes(4096))\n os.close(fd)", False),
    ("lstat lower files, cold", "import os\nfor i in range({n}): os.lstat(f'{m}/many/f{{i}}')",
     True),
    ("tar -x", "import os, subprocess\nos.mkdir('{m}/x')\n"
     "subprocess.run(['tar', '-C', '{m}/x', '-xf', '{tar}'], check=True)", False),
    ("unlink lower files", "import os\nfor i in range({n}): os.unlink(f'{m}/many/f{{i}}')",
     False),
    ("chmod lower files", "import os\nfor i in range({n}): os.chmod(f'{m}/many/f{{i}}', 0o664)",
     False),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--layerfs", default=os.path.join(here, "..", "build", "fuse", "layerfs"))
    p.add_argument("--layerctl", default=os.path.join(here, "..", "build", "tools", "layerctl"))
    p.add_argument("--options", default="", help="extra layerfs -o options")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    base = tempfile.mkdtemp(prefix="layerfs-requests-")
    try:
        layers = build_stack(os.path.join(base, "layers"), args.files)
        tar = os.path.join(base, "inc.tar")
        sh(f"tar -C /usr -cf {tar} include/linux")
        tar_entries = int(subprocess.run(f"tar tf {tar} | wc -l", shell=True,
                                         capture_output=True, text=True).stdout)
        print(f"layerfs {args.options or '(default options)'}; {args.files} files, "
              f"tar of {tar_entries} entries")
        print(f"{'workload':28} {'req/file':>9} {'syscalls/file':>14}  requests by type, per file")
        for label, cmd, cold in WORKLOADS:
            root = tempfile.mkdtemp(dir=base)
            u, w, m = (os.path.join(root, x) for x in "uwm")
            for d in (u, w, m):
                os.mkdir(d)
            opts = f"lowerdir={':'.join(reversed(layers))},upperdir={u},workdir={w}"
            if args.options:
                opts += "," + args.options
            subprocess.run([args.layerfs, "-o", opts, m], check=True)
            try:
                n = tar_entries if "tar" in label else args.files
                if cold:
                    os.sync()
                    with open("/proc/sys/vm/drop_caches", "w") as f:
                        f.write("3\n")
                subprocess.run([args.layerctl, "stats", "--reset", m], check=True,
                               stdout=subprocess.DEVNULL)
                run_python(cmd.format(m=m, n=args.files, tar=tar))
                stats = json.loads(subprocess.run([args.layerctl, "stats", "--json", m],
                                                  check=True, capture_output=True,
                                                  text=True).stdout)
            finally:
                subprocess.run(["umount", m], check=False)
            counts = {k: v["count"] for k, v in stats["ops"].items()}
            for k in ("statfs", "getxattr"):  # layerctl's own requests
                counts[k] = counts.get(k, 0) - (2 if k == "getxattr" else 0)
            counts = {k: v for k, v in counts.items() if v > 0}
            total = sum(counts.values())
            by_type = ", ".join(f"{k} {v / n:.2f}" for k, v in
                                sorted(counts.items(), key=lambda kv: -kv[1]) if v / n >= 0.01)
            # The syscalls the same workload makes, measured on a plain copy.
            plain = os.path.join(root, "plain")
            shutil.copytree(os.path.join(layers[0]), plain, symlinks=True)
            for l in layers[1:]:
                shutil.copytree(l, plain, symlinks=True, dirs_exist_ok=True)
            calls = syscalls(cmd.format(m=plain, n=args.files, tar=tar))
            per_call = f"{calls / n:14.2f}" if calls else f"{'-':>14}"
            print(f"{label:28} {total / n:9.2f} {per_call}  {by_type}", flush=True)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        for line in open("/proc/self/mountinfo"):
            if base in line:
                subprocess.run(["umount", "-l", line.split()[4]], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
