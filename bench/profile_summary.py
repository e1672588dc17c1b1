"""Summarise a py-spy profile in folded-stack form (``py-spy record --format raw``).

    .venv/bin/python bench/profile_summary.py PROFILE.folded.txt [--top 30] [--under FUNCTION]

Prints the functions with the most samples on top of the stack (self time) and
in the stack (inclusive time), as a share of all samples.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    # "function (file.py:line)": keep function and file, drop the line number
    names = [re.sub(r":\d+\)$", ")", frame.strip()) for frame in stack.split(";")]
    return names, int(count)


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly stop when piped into head
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--under", help="only stacks through this function (substring)")
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.profile, encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            names, count = frames(line.rstrip("\n"))
            if args.under and not any(args.under in name for name in names):
                continue
            total += count
            own[names[-1]] += count
            for name in set(names):
                inclusive[name] += count
    print(f"{total} samples")
    print("self %   function")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:6.1f}   {name}")
    print("incl %   function")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:6.1f}   {name}")


if __name__ == "__main__":
    main()
