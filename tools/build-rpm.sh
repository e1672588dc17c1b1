#!/usr/bin/env bash
# Build the recodex-monitor RPM from this working tree.
#
#   tools/build-rpm.sh [TOPDIR]
#
# Makes Source0 (recodex-monitor-VERSION.tar.gz) from the files git knows about
# (tracked ones plus new ones not ignored, as they are in the working tree; every
# file but the ignored ones when this is not a git checkout), then runs
# `rpmbuild -bb --nodeps` in TOPDIR (default: a new temporary directory).
# rpmbuild's output goes to stderr; stdout gets only the path of the built .rpm.
#
# Needs rpmbuild (Debian: apt-get install rpm), GNU tar, gzip, and a Python with
# pip, setuptools >= 61 and either wheel or setuptools >= 70.1.  It takes $PYTHON
# if set, else the first of `python3` on PATH and /usr/bin/python3 that has them
# (on Debian: apt-get install python3-pip python3-setuptools python3-wheel).
# --nodeps: BuildRequires name Fedora packages, which Debian does not have.
set -euo pipefail

die() {
    echo "build-rpm.sh: $*" >&2
    exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
spec="$root/recodex-monitor.spec"
name=recodex-monitor

command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian/Ubuntu: apt-get install rpm)"
[ -f "$spec" ] || die "no spec file at $spec"
version=$(sed -n 's/^Version:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$spec" | head -n 1)
[ -n "$version" ] || die "no Version: in $spec"

# Prints the interpreter's real path if it can build and install the wheel.
usable_python() {
    "$1" - <<'EOF' 2>/dev/null
import importlib.util
import sys

import setuptools

ok = (
    int(setuptools.__version__.split(".")[0]) >= 61
    and importlib.util.find_spec("pip") is not None
    and (
        importlib.util.find_spec("wheel") is not None
        or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    )
)
if ok:
    print(sys.executable)
sys.exit(0 if ok else 1)
EOF
}

python=
if [ -n "${PYTHON:-}" ]; then
    python=$(usable_python "$PYTHON") ||
        die "PYTHON=$PYTHON lacks pip, setuptools >= 61 or wheel (or setuptools >= 70.1)"
else
    for candidate in python3 /usr/bin/python3; do
        command -v "$candidate" >/dev/null || continue
        if python=$(usable_python "$candidate"); then
            break
        fi
        python=
    done
    [ -n "$python" ] || die "no python3 with pip, setuptools >= 61 and wheel (or setuptools >= 70.1);" \
        "Debian: apt-get install python3-pip python3-setuptools python3-wheel, or set PYTHON"
fi

if [ $# -ge 1 ]; then
    mkdir -p "$1"
    topdir=$(cd "$1" && pwd)
else
    topdir=$(mktemp -d "${TMPDIR:-/tmp}/recodex-monitor-rpm.XXXXXX")
fi
mkdir -p "$topdir"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}

# Source0: the files as they are in the working tree, under recodex-monitor-VERSION/.
tarball="$topdir/SOURCES/$name-$version.tar.gz"
list_files() {
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked files (skipping any deleted in the working tree) and new, unignored ones.
        git -C "$root" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' file; do
                if [ -e "$root/$file" ] || [ -L "$root/$file" ]; then
                    printf '%s\0' "$file"
                fi
            done
    else
        (cd "$root" && find . \( -name .git -o -name .venv -o -name build -o -name dist \
            -o -name __pycache__ -o -name '*.egg-info' -o -name .pytest_cache \
            -o -name .ruff_cache -o -name .hypothesis \) -prune -o \( -type f -o -type l \) \
            -printf '%P\0')
    fi
}
list_files | tar -C "$root" --null --files-from=- --sort=name --owner=0 --group=0 --numeric-owner \
    --transform="flags=rh;s|^|$name-$version/|" -czf "$tarball"

echo "build-rpm.sh: building $name $version with $python in $topdir" >&2
rpmbuild -bb --nodeps \
    --define "_topdir $topdir" \
    --define "python3 $python" \
    "$spec" >&2

rpm=$(find "$topdir/RPMS" -type f -name "$name-$version-*.noarch.rpm" | sort | tail -n 1)
[ -n "$rpm" ] || die "rpmbuild finished but no $name-$version-*.noarch.rpm in $topdir/RPMS"
echo "$rpm"
