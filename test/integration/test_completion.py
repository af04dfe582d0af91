"""Bash completion (completions/layerctl, completions/layerfs) driven as
readline drives it: layerctl's subcommands and options, the live layerfs
mounts for the commands that take a MOUNTPOINT (a name with a space
included), and layerfs's -o names, which must be those of its parser.
"""
import os
import re
import subprocess

import harness
import test_manpages

COMPLETIONS = os.path.join(test_manpages.SOURCE_ROOT, "completions")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
BREAKS = "\"'><=;|&(:"  # bash's COMP_WORDBREAKS, less the blanks

# Loads bash-completion and one completion file, sets COMP_* for the line
# in $LINE split into the words of "$@", runs the function named by $FUNC
# and prints COMPREPLY one a line.
DRIVER = r'''
source "$BASH_COMPLETION"
source "$COMPLETION"
compopt() { :; }  # readline's options mean nothing here
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$LINE
COMP_POINT=${#LINE}
"$FUNC" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def comp_words(line):
    """The words readline gives a completion function for `line`: split at
    blanks, each run of word-break characters a word of its own."""
    words = []
    for token in re.split(r"[ \t]+", line):
        words += [w for w in re.split(f"([{re.escape(BREAKS)}]+)", token) if w]
    if line.endswith((" ", "\t")) or not words:
        words.append("")
    return words


def complete(program, command, line):
    """What completing `line` (program name first) offers."""
    words = comp_words(line)
    words[0] = command
    env = dict(os.environ, BASH_COMPLETION=BASH_COMPLETION,
               COMPLETION=os.path.join(COMPLETIONS, program), FUNC="_" + program,
               LINE=command + line[len(line.split()[0]):])
    r = subprocess.run(["bash", "-c", DRIVER, "driver"] + words, capture_output=True,
                       text=True, timeout=60, env=env)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"completing {line!r}: exit {r.returncode}: {r.stderr.strip()}")
    return [l for l in r.stdout.split("\n") if l]


def expect(problems, program, command, line, want, exact=False):
    got = complete(program, command, line)
    ok = sorted(got) == sorted(want) if exact else set(want) <= set(got)
    if not ok:
        problems.append(f"{line!r}: offers {got}, expected {'exactly ' if exact else ''}{want}")
    return got


def check_layerctl(problems, tmp):
    ctl = harness.LAYERCTL
    # exactly what --help lists: stats, for one, only once layerctl has it
    subcommands = test_manpages.help_entries([], "Subcommands:")
    expect(problems, "layerctl", ctl, "layerctl ", subcommands, exact=True)
    expect(problems, "layerctl", ctl, "layerctl d", ["diff"], exact=True)
    expect(problems, "layerctl", ctl, "layerctl --v", ["--version"], exact=True)
    expect(problems, "layerctl", ctl, "layerctl diff --",
           ["--lower", "--upper", "--content", "--json", "--help"], exact=True)
    expect(problems, "layerctl", ctl, "layerctl commit --c", ["--compress"], exact=True)
    expect(problems, "layerctl", ctl, "layerctl commit --compress ", ["none", "gzip", "zstd"],
           exact=True)
    expect(problems, "layerctl", ctl, "layerctl apply --whiteout-format ",
           ["overlay", "oci"], exact=True)
    expect(problems, "layerctl", ctl, "layerctl inspect --format {{.U",
           ["{{.UpperDir}}"], exact=True)
    for d in ("dir-a", "dir-b", "file-c"):
        path = os.path.join(tmp, d)
        if d.startswith("dir"):
            os.mkdir(path)
        else:
            open(path, "w").close()
    expect(problems, "layerctl", ctl, f"layerctl diff --lower {tmp}/dir-a:{tmp}/d",
           [f"{tmp}/dir-a", f"{tmp}/dir-b"], exact=True)
    expect(problems, "layerctl", ctl, f"layerctl commit --upper {tmp}/ -o {tmp}/f",
           [f"{tmp}/file-c"], exact=True)
    # apply FILE DIR: a file first, then a directory
    expect(problems, "layerctl", ctl, f"layerctl apply {tmp}/f", [f"{tmp}/file-c"], exact=True)
    expect(problems, "layerctl", ctl, f"layerctl apply --diff-id x {tmp}/file-c {tmp}/",
           [f"{tmp}/dir-a", f"{tmp}/dir-b"], exact=True)

    low, up, work = (os.path.join(tmp, n) for n in ("low", "up", "work"))
    mounts = [os.path.join(tmp, "m1"), os.path.join(tmp, "m 2")]
    for d in [low, up, work] + mounts:
        os.mkdir(d)
    with harness.layerfs(mounts[0], [low], up, work), harness.layerfs(mounts[1], [low]):
        live = [os.path.realpath(m) for m in mounts]
        takes_mountpoint = [s for s in subcommands
                            if "MOUNTPOINT" in test_manpages.help_entries([s], "Positionals:")]
        for sub in ("diff", "size", "inspect", "commit"):
            if sub not in takes_mountpoint:
                problems.append(f"layerctl {sub} --help shows no MOUNTPOINT")
        for sub in takes_mountpoint:
            got = expect(problems, "layerctl", ctl, f"layerctl {sub} ", live)
            if any(not os.path.isdir(g) for g in got):
                problems.append(f"layerctl {sub}: offers {got}, not only mount points")
            expect(problems, "layerctl", ctl, f"layerctl {sub} -q {tmp}/m", live)
        expect(problems, "layerctl", ctl, "layerctl ps ", [], exact=True)
        expect(problems, "layerctl", ctl, f"layerctl diff --upper {up} --lower {tmp}/lo",
               [low], exact=True)


def check_layerfs(problems, tmp):
    fs = harness.LAYERFS
    names = test_manpages.parser_options()
    expect(problems, "layerfs", fs, "layerfs -o ", sorted(names), exact=True)
    expect(problems, "layerfs", fs, "layerfs --d", ["--debug"], exact=True)
    # after a comma: the last option only; readline replaces the text after
    # the word's last '=' or ':', so that is what comes back
    expect(problems, "layerfs", fs, f"layerfs -o lowerdir={tmp},upp",
           [f"{tmp},upperdir="], exact=True)
    expect(problems, "layerfs", fs, f"layerfs -o lowerdir={tmp}/dir-a:{tmp}/dir-",
           [f"{tmp}/dir-a", f"{tmp}/dir-b"], exact=True)
    expect(problems, "layerfs", fs, f"layerfs -o upperdir={tmp}/dir-",
           [f"{tmp}/dir-a", f"{tmp}/dir-b"], exact=True)
    expect(problems, "layerfs", fs, f"layerfs -o lowerdir={tmp}/dir-a {tmp}/d",
           [f"{tmp}/dir-a", f"{tmp}/dir-b"], exact=True)


def main():
    harness.start(150)
    if not os.path.exists(BASH_COMPLETION):
        harness.skip("bash-completion not installed")
    problems = []
    with harness.temp_dir() as tmp:
        check_layerctl(problems, tmp)
        check_layerfs(problems, tmp)
    harness.check(problems)


if __name__ == "__main__":
    main()
