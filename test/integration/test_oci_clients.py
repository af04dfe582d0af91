"""The real clients accept `layerctl commit --oci-layout` images.

From the kernel-form stack of stacks.py (lowers as layers, upper on top):
 - skopeo inspect oci:DIR:TAG lists the three layers and the manifest;
 - umoci unpack --image DIR:TAG gives a rootfs equal to the merged view;
 - podman pull oci:DIR:TAG, podman create, podman mount show the same tree
   (all podman state lives in the test's temp dir, nothing from a network);
 - a second commit into the same layout adds its tag, keeps the first, and
   reuses the lower blobs.
Views are compared on every attribute, mtimes at the whole seconds a layer
holds; the root dir's own attributes are the unpacker's and are left out.
"""
import json
import os
import subprocess

import commit_tools as ct
import harness


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def tags_of(layout):
    index = json.load(open(os.path.join(layout, "index.json")))
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"]}


def check_skopeo(layout, tag, manifest, problems):
    info = json.loads(run(["skopeo", "inspect", f"oci:{layout}:{tag}"]))
    if info.get("Digest") != manifest:
        problems.append(f"skopeo: digest {info.get('Digest')} != {manifest}")
    if len(info.get("Layers", [])) != 3:
        problems.append(f"skopeo: {len(info.get('Layers', []))} layers, expected 3")


def check_umoci(tmp, layout, tag, expected, problems):
    bundle = os.path.join(tmp, "bundle")
    run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle])
    actual = ct.without_root(ct.in_seconds(harness.snapshot(os.path.join(bundle, "rootfs"))))
    problems += harness.compare(expected, actual, "umoci rootfs")


def check_podman(tmp, layout, tag, expected, problems):
    state = os.path.join(tmp, "podman")
    podman = ["podman", "--root", f"{state}/root", "--runroot", f"{state}/runroot",
              "--tmpdir", f"{state}/tmp", "--storage-driver", "overlay",
              "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    image = f"oci:{layout}:{tag}"
    try:
        run(podman + ["pull", "-q", image])
        run(podman + ["create", "--name", "layerctl-commit-test", image, "/bin/true"])
        merged = run(podman + ["mount", "layerctl-commit-test"]).strip()
        actual = ct.without_root(ct.in_seconds(harness.snapshot(merged)))
        problems += harness.compare(expected, actual, "podman mount")
    finally:
        for args in (["umount", "-a"], ["rm", "-a", "-f"], ["rmi", "-a", "-f"]):
            subprocess.run(podman + args, capture_output=True, timeout=120)


def main():
    harness.start(500)
    harness.require_tools("skopeo", "umoci", "podman")
    problems = []
    with harness.temp_dir() as tmp:
        upper, lowers = ct.kernel_stack(tmp)
        expected = ct.without_root(ct.in_seconds(ct.merged_view(tmp, upper, lowers)))
        layout = os.path.join(tmp, "image")
        out = ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", upper,
                          "--oci-layout", layout, "--tag", "first")
        if tags_of(layout).get("first") != out["manifest"]:
            problems.append(f"index.json does not point 'first' at {out['manifest']}")

        check_skopeo(layout, "first", out["manifest"], problems)
        check_umoci(tmp, layout, "first", expected, problems)
        check_podman(tmp, layout, "first", expected, problems)

        # A second image in the same layout: new upper content, same lowers.
        blobs = os.path.join(layout, "blobs/sha256")
        before = {n: os.stat(os.path.join(blobs, n)).st_mtime_ns for n in os.listdir(blobs)}
        with open(os.path.join(upper, "added-later"), "w") as f:
            f.write("second\n")
        second = ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", upper,
                             "--oci-layout", layout, "--tag", "second")
        tags = tags_of(layout)
        if set(tags) != {"first", "second"} or tags["second"] != second["manifest"]:
            problems.append(f"tags after the second commit: {tags}")
        after = os.listdir(blobs)
        new = set(after) - set(before)
        if len(new) != 3:  # the new top layer, config and manifest only
            problems.append(f"second commit wrote {len(new)} new blobs, expected 3")
        for n, t in before.items():
            if os.stat(os.path.join(blobs, n)).st_mtime_ns != t:
                problems.append(f"blob {n} was rewritten")
        check_skopeo(layout, "first", out["manifest"], problems)
        check_skopeo(layout, "second", second["manifest"], problems)
        print(f"compared {len(expected)} entries per client")
    harness.check(problems)


if __name__ == "__main__":
    main()
