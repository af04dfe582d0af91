"""The man pages against the programs: layerfs(1) and --help name every
option the daemon's parser (kSpec in fuse/cmdline.cpp) accepts and no other,
the parser accepts each of them, layerctl(1) documents each subcommand, its
options and every key of its --json output, the pages render without groff
warnings, and the mount examples in the page are the shipped ones.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import harness

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(harness.LAYERFS)))
FLAGS = ["-f", "-d", "--debug", "-o", "-h", "--help", "-V", "--version"]
# Values the parser checks; any other option takes "x".
VALID = {"lowerdir": None, "uidmapping": "0:0:1", "gidmapping": "0:0:1",
         "squash_to_uid": "0", "squash_to_gid": "0", "xattr_permissions": "0",
         "timeout": "1", "fsync": "1", "writeback": "1", "max_read": "4096",
         "stats": "1", "metacopy": "off", "quota": "1M", "io_uring": "off",
         "passthrough": "off"}


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def parser_options():
    """Every -o name kSpec matches, as "name" or "name=", read from the source."""
    text = open(os.path.join(SOURCE_ROOT, "fuse", "cmdline.cpp")).read()
    spec = text[text.index("const fuse_opt kSpec[]"):text.index("FUSE_OPT_END")]
    names = set()
    for m in re.finditer(r'(?:LFS_OPT|FUSE_OPT_KEY)\("([^"]+)"', spec):
        names.add(m.group(1).replace("%s", ""))
    return names


def help_options(text):
    """The -o names `layerfs --help` lists: first words under "Mount options:",
    every word of the lists under "Passed on..." and "Accepted for..."."""
    names, section = set(), None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line
        elif section == "Mount options:" and re.match(r"  [a-z_]", line):
            word = line.split()[0]
            names.add(word.split("=")[0] + ("=" if "=" in word else ""))
        elif section and section.startswith(("Passed on", "Accepted for")) and line.strip():
            names.update(line.split())
    return names


def roff_sections(roff, level):
    """{title: text} of the .SH (level "SH") or .SS sections of a roff page."""
    out, title = {}, None
    for line in roff.splitlines():
        if line.startswith("." + level + " "):
            title = line[4:].strip()
            out[title] = []
        elif line.startswith(".SH ") and level == "SS":
            title = None
        elif title is not None:
            out[title].append(line)
    return {t: "\n".join(lines) for t, lines in out.items()}


def term_lines(roff_text):
    """The term lines of the tagged paragraphs (each followed by ".RS 4")."""
    lines = roff_text.splitlines()
    return [l for l, nxt in zip(lines, lines[1:]) if nxt == ".RS 4" and not l.startswith(".")]


def man_options(roff):
    """The -o names layerfs(1) documents: the bold names of the terms of its
    MOUNT OPTIONS section, "name=" where a '=' follows."""
    section = roff_sections(roff, "SH")["MOUNT OPTIONS"]
    names = set()
    for line in term_lines(section):
        for m in re.finditer(r"\\fB([a-z_]+)\\fR(=?)", line):
            names.add(m.group(1) + m.group(2))
    return names


def unshown_options(text):
    """The parser's -o names that a rendered layerfs(1) does not show."""
    missing = []
    for name in sorted(parser_options()):
        end = "" if name.endswith("=") else r"(?![\w-])"
        if not re.search(rf"(?<![\w.-]){re.escape(name)}{end}", text):
            missing.append(name)
    return missing


def rendered(page):
    """The page as man(1) shows it, and groff's warnings."""
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8")
    r = run(["man", "--warnings", "-E", "UTF-8", "-P", "cat", "-l", page], env=env)
    text = re.sub(r".\x08", "", r.stdout)
    return text, r.stderr.strip(), r.returncode


def check_rendering(problems, page, needed_sections):
    text, warnings, rc = rendered(page)
    if rc != 0 or warnings:
        problems.append(f"{os.path.basename(page)}: man exit {rc}, warnings: {warnings}")
    for s in needed_sections:
        if not re.search(rf"^{re.escape(s)}$", text, re.M):
            problems.append(f"{os.path.basename(page)}: no section {s}")
    return text


def accepted(problems, tmp, names):
    """Each name passes the parser with no 'unknown option' warning."""
    low = os.path.join(tmp, "low")
    os.makedirs(low, exist_ok=True)
    missing = os.path.join(tmp, "no-mountpoint")
    bogus = run([harness.LAYERFS, "-o", f"lowerdir={low},no_such_option", missing])
    if "unknown option 'no_such_option'" not in bogus.stderr:
        problems.append(f"an unknown option is not reported: {bogus.stderr!r}")
    for name in sorted(names):
        bare = name.rstrip("=")
        if bare == "lowerdir":
            continue
        opt = bare + "=" + VALID.get(bare, "x") if name.endswith("=") else bare
        if bare in ("upperdir", "workdir", "quota"):  # each needs the others
            opt += f",upperdir={tmp},workdir={tmp}"
        r = run([harness.LAYERFS, "-o", f"lowerdir={low},{opt}", missing])
        if "unknown option" in r.stderr or "does not exist" not in r.stderr:
            problems.append(f"-o {opt}: not accepted by the parser: {r.stderr.strip()!r}")


def check_layerfs(problems, tmp):
    page = os.path.join(BUILD_ROOT, "doc", "layerfs.1")
    roff = open(page).read()
    spec = parser_options()
    if len(spec) < 40 or "lowerdir=" not in spec or "squash_to_root" not in spec:
        problems.append(f"kSpec not read from fuse/cmdline.cpp: {sorted(spec)}")
    help_text = run([harness.LAYERFS, "--help"]).stdout
    in_help, in_man = help_options(help_text), man_options(roff)
    for what, names in (("--help", in_help), ("layerfs(1)", in_man)):
        if names != spec:
            problems.append(f"{what} lists {sorted(names - spec)} that the parser does not "
                            f"know, and lacks {sorted(spec - names)}")
    accepted(problems, tmp, in_help | in_man)

    text = check_rendering(problems, page, [
        "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "MOUNT OPTIONS", "ON-DISK FORMATS",
        "ROOTLESS USE", "MOUNTING AT BOOT", "SIGNALS", "EXIT STATUS", "SEE ALSO"])
    for name in unshown_options(text):
        problems.append(f"man layerfs does not show {name}")
    options = roff_sections(roff, "SH")["OPTIONS"]
    for flag in FLAGS:
        if f"\\fB{flag}\\fR" not in options or not re.search(rf"(^|[\s,]){flag}\b", help_text):
            problems.append(f"{flag} missing from --help or from OPTIONS in layerfs(1)")
    for needle in ("SIGTERM", "SIGINT", "SIGHUP", "user.containers.override_stat",
                   ".wh..wh..opq", "trusted.overlay.opaque", "user.overlay.opaque",
                   "user.fuseoverlayfs.opaque", "overlay.whiteout", "overlay.redirect"):
        if needle not in text:
            problems.append(f"man layerfs does not mention {needle}")
    check_examples(problems, text)


def check_examples(problems, text):
    """The fstab line and mount unit in layerfs(1) are those in examples/."""
    def content(name):
        with open(os.path.join(SOURCE_ROOT, "examples", name)) as f:
            return [l.strip() for l in f if l.strip() and not l.startswith("#")]
    shown = [l.strip() for l in text.splitlines()]
    for name in ("fstab", "srv-layerfs-merged.mount"):
        lines = content(name)
        start = shown.index(lines[0]) if lines[0] in shown else -1
        got = [l for l in shown[start:start + 2 * len(lines)] if l][:len(lines)]
        if start < 0 or got != lines:
            problems.append(f"layerfs(1) does not show examples/{name} as it is")


def json_keys(value):
    keys = set()
    if isinstance(value, dict):
        for k, v in value.items():
            keys.add(k)
            keys |= json_keys(v)
    elif isinstance(value, list):
        for v in value:
            keys |= json_keys(v)
    return keys


def json_outputs(problems, tmp):
    """{subcommand: the parsed --json output} on a small layer pair (and a
    mount for ps and inspect when one can be made)."""
    low, up = os.path.join(tmp, "jl"), os.path.join(tmp, "ju")
    os.makedirs(os.path.join(low, "d"))
    os.makedirs(os.path.join(up, "d"))
    for p, data in ((os.path.join(low, "d", "old"), b"old"), (os.path.join(low, "gone"), b"x"),
                    (os.path.join(up, "d", "new"), b"new" * 1000),
                    (os.path.join(up, ".wh.gone"), b"")):
        with open(p, "wb") as f:
            f.write(data)
    layers = ["--lower", low, "--upper", up]
    out = {}
    for sub, args in (("diff", ["--json"]), ("size", ["--json", "--top", "5"])):
        r = run([harness.LAYERCTL, sub] + args + layers)
        if r.returncode != 0:
            problems.append(f"layerctl {sub}: exit {r.returncode}: {r.stderr.strip()}")
            continue
        out[sub] = json.loads(r.stdout)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("ps and inspect JSON not checked: needs root and /dev/fuse")
        return out
    mnt, work = os.path.join(tmp, "jm"), os.path.join(tmp, "jw")
    os.makedirs(mnt)
    os.makedirs(work)
    with harness.layerfs(mnt, [low], up, work):
        for sub, args in (("ps", ["--json"]), ("inspect", [mnt])):
            r = run([harness.LAYERCTL, sub] + args)
            if r.returncode != 0:
                problems.append(f"layerctl {sub}: exit {r.returncode}: {r.stderr.strip()}")
                continue
            out[sub] = json.loads(r.stdout)
        if not any(row.get("MergedDir") == os.path.realpath(mnt) for row in out.get("ps", [])):
            problems.append(f"layerctl ps --json does not list the mount: {out.get('ps')}")
    return out


def help_entries(args, section):
    """The first words of one section ("Subcommands:", "Options:") of a
    `layerctl ... --help`."""
    r = run([harness.LAYERCTL] + args + ["--help"])
    entries, on = [], False
    for line in r.stdout.splitlines():
        if line and not line.startswith(" "):
            on = line == section
        elif on and re.match(r"  \S", line):
            entries.append(line.split()[0])
    return entries


def check_layerctl(problems, tmp):
    page = os.path.join(BUILD_ROOT, "doc", "layerctl.1")
    roff = open(page).read()
    text = check_rendering(problems, page, ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS",
                                            "EXIT STATUS", "SEE ALSO"])
    commands = roff_sections(roff, "SS")
    subcommands = help_entries([], "Subcommands:")
    if len(subcommands) < 6:
        problems.append(f"layerctl --help lists too few subcommands: {subcommands}")
    if sorted(subcommands) != sorted(commands):
        problems.append(f"layerctl --help has subcommands {sorted(subcommands)}, "
                        f"layerctl(1) documents {sorted(commands)}")
    for sub in subcommands:
        if sub not in commands:
            continue
        options = set()
        for entry in help_entries([sub], "Options:"):
            options.update(o for o in entry.split(",") if o not in ("-h", "--help"))
        documented = set()
        for line in term_lines(commands[sub]):
            documented.update(re.findall(r"\\fB(--?[a-z][a-z-]*)\\fR", line))
        if options != documented:
            problems.append(f"layerctl {sub}: --help has {sorted(options)}, layerctl(1) "
                            f"documents {sorted(documented)}")
    for sub, value in json_outputs(problems, tmp).items():
        body = commands.get(sub, "")
        for key in sorted(json_keys(value)):
            if f'"{key}"' not in body:
                problems.append(f"layerctl {sub} --json has key {key!r}, not in layerctl(1)")


def main():
    # no harness.start(): the pages are checked without root; the JSON of
    # ps and inspect only when a mount can be made
    signal.signal(signal.SIGALRM, harness._on_alarm)
    signal.alarm(150)
    if not shutil.which("man"):
        harness.skip("man(1) not installed (apt-get install man-db)")
    for page in ("layerfs.1", "layerctl.1"):
        if not os.path.exists(os.path.join(BUILD_ROOT, "doc", page)):
            if not shutil.which("scdoc"):
                harness.skip("scdoc not installed: the man pages were not built")
            print(f"FAIL: {BUILD_ROOT}/doc/{page} was not built")
            sys.exit(1)
    problems = []
    with harness.temp_dir() as tmp:
        check_layerfs(problems, tmp)
        check_layerctl(problems, tmp)
    harness.check(problems)


if __name__ == "__main__":
    main()
