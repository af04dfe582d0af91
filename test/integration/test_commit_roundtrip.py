"""commit -> apply -> mount gives back the original merged view.

The oracle is kernel overlayfs over the kernel-form stack of stacks.py (char
0/0 whiteouts, trusted opaque dirs, xattr whiteouts in an opaque=x dir) with
its top layer as the upper. Three round trips, each compared on every
attribute (mtimes at the whole seconds a layer holds):
 1. the upper committed against its lowers, applied, and stacked back on
    the same lowers under a read-only layerfs mount;
 2. the merged view committed flat (no lowers), applied, and mounted as the
    only lower;
 3. every layer of an --oci-layout commit applied with --diff-id and
    stacked (OCI whiteouts become kernel ones again).
Also: committing twice gives the same bytes, and an applied dir re-commits
to the same DiffID.
"""
import json
import os

import commit_tools as ct
import harness


def mount_and_compare(tmp, name, lowers, expected, problems):
    mnt = os.path.join(tmp, "mnt-" + name)
    os.makedirs(mnt)
    with harness.layerfs(mnt, lowers):
        actual = ct.in_seconds(harness.snapshot(mnt))
    problems += harness.compare(expected, actual, name)
    return len(actual)


def main():
    harness.start(400)
    problems = []
    with harness.temp_dir() as tmp:
        upper, lowers = ct.kernel_stack(tmp)
        before = [harness.tree_digest(l) for l in lowers + [upper]]
        expected = ct.in_seconds(ct.merged_view(tmp, upper, lowers))

        # 1. upper against its lowers, stacked back on them.
        layer = os.path.join(tmp, "upper.tar.zst")
        d = ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", upper, "-o", layer)
        again = ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", upper,
                            "-o", layer.replace("upper", "upper-again"))
        if open(layer, "rb").read() != open(layer.replace("upper", "upper-again"), "rb").read():
            problems.append("two commits of the same upper differ")
        applied = os.path.join(tmp, "applied-upper")
        a = ct.layerctl("apply", layer, applied, "--diff-id", d["diff_id"])
        if a["diff_id"] != d["diff_id"]:
            problems.append(f"apply saw {a['diff_id']}, commit wrote {d['diff_id']}")
        n = mount_and_compare(tmp, "upper-over-lowers", [applied] + lowers, expected, problems)
        re = ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", applied,
                         "-o", os.path.join(tmp, "recommit.tar"))
        if re["diff_id"] != d["diff_id"]:
            problems.append("the applied upper does not re-commit to the same DiffID")

        # 2. the merged view, flat, as the only lower.
        flat = os.path.join(tmp, "flat.tar.gz")
        mnt = os.path.join(tmp, "oracle-live")
        os.makedirs(mnt)
        with harness.kernel_overlay(mnt, [upper] + lowers):
            f = ct.layerctl("commit", "--upper", mnt, "-o", flat)
        flat_dir = os.path.join(tmp, "applied-flat")
        ct.layerctl("apply", flat, flat_dir, "--diff-id", f["diff_id"])
        mount_and_compare(tmp, "flat-only-lower", [flat_dir], expected, problems)

        # 3. every layer of an image, applied and stacked.
        layout = os.path.join(tmp, "oci")
        ct.layerctl("commit", "--lower", ":".join(lowers), "--upper", upper,
                    "--oci-layout", layout, "--tag", "rt")
        index = json.load(open(os.path.join(layout, "index.json")))
        man_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(open(os.path.join(layout, "blobs/sha256", man_digest)))
        config = json.load(open(os.path.join(layout, "blobs/sha256",
                                             manifest["config"]["digest"].split(":")[1])))
        stacked = []
        for i, (blob, diff_id) in enumerate(zip(manifest["layers"], config["rootfs"]["diff_ids"])):
            out = os.path.join(tmp, f"image-layer-{i}")
            ct.layerctl("apply", os.path.join(layout, "blobs/sha256", blob["digest"].split(":")[1]),
                        out, "--diff-id", diff_id)
            stacked.insert(0, out)  # layers are bottom first, lowerdir topmost first
        mount_and_compare(tmp, "image-layers", stacked, expected, problems)

        if [harness.tree_digest(l) for l in lowers + [upper]] != before:
            problems.append("commit or apply changed a source layer")
        print(f"compared {n} entries per view")
    harness.check(problems)


if __name__ == "__main__":
    main()
