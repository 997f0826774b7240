#!/bin/sh
# Build dist/bessai-edge_<version>_<arch>.deb from this working tree with debhelper.
#
# usage: packaging/build-deb.sh [--print-path]
#   --print-path  print the path of the .deb this build would write, and build nothing
#
# Environment:
#   BESSAI_DEB_VERSION  package version (default: __version__ of bessai_edge); a version
#                       other than the one in packaging/debian/changelog gets a new
#                       changelog entry, and one other than __version__ is written to
#                       package_version, both in the build copy only
#   BESSAI_DIST_DIR     where the .deb goes (default: dist/ in the repository)
#
# The build runs in a copy of the tree under build/deb/, so it never writes to the
# sources. Its last line of standard output is the path of the .deb.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
upstream=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/bessai_edge/__init__.py")
if [ -z "$upstream" ]; then
	echo "build-deb.sh: __version__ not found in bessai_edge/__init__.py" >&2
	exit 1
fi
version=${BESSAI_DEB_VERSION:-$upstream}
arch=$(dpkg --print-architecture)
dist=${BESSAI_DIST_DIR:-$repo/dist}
deb="$dist/bessai-edge_${version}_${arch}.deb"

if [ "${1:-}" = --print-path ]; then
	echo "$deb"
	exit 0
fi

for required in packaging/bessai.env systemd/bessai.service; do
	if [ ! -f "$repo/$required" ]; then
		echo "build-deb.sh: $required is missing; the package installs it" >&2
		exit 1
	fi
done

# What goes into the package: the Python package, the core's C sources, the build
# files, the profiles, the units, the user guides and the packaging itself.
inputs="bessai_edge native registry packaging systemd setup.py pyproject.toml constraints.txt
	README.md README.es.md docs"
# A directory of its own for each run, so that two builds at once cannot collide. It
# is deleted after a successful build and kept for inspection after a failed one.
mkdir -p "$repo/build/deb"
work=$(mktemp -d "$repo/build/deb/run.XXXXXX")
stage="$work/bessai-edge-$version"
mkdir "$stage"
trap 'echo "build-deb.sh: failed; the build tree is kept in $work" >&2' EXIT
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and new files, without ignored ones (build output, caches, .so files).
	(cd "$repo" && git ls-files -z --cached --others --exclude-standard -- $inputs) |
		(cd "$repo" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		(cd "$repo" && tar --null -T - -cf -) | tar -C "$stage" -xf -
else
	(cd "$repo" && tar --exclude=__pycache__ --exclude='*.so' --exclude='*.mo' \
		--exclude=bessai_edge/_core.c -cf - $inputs) | tar -C "$stage" -xf -
fi
cp -a "$stage/packaging/debian" "$stage/debian"

# The gettext catalogs are compiled here because setup.py only picks up .mo files.
for po in "$stage"/bessai_edge/locale/*/LC_MESSAGES/*.po; do
	[ -e "$po" ] || continue
	msgfmt --check -o "${po%.po}.mo" "$po"
done

# The version users see (bessai --version, the start line, /health) is the package's.
if [ "$version" != "$upstream" ]; then
	sed -i "s/^package_version = .*/package_version = \"$version\"/" "$stage/bessai_edge/__init__.py"
	if ! grep -qxF "package_version = \"$version\"" "$stage/bessai_edge/__init__.py"; then
		echo "build-deb.sh: package_version not found in bessai_edge/__init__.py" >&2
		exit 1
	fi
fi

changelog_version=$(dpkg-parsechangelog -l "$stage/debian/changelog" -S Version)
if [ "$version" != "$changelog_version" ]; then
	maintainer=$(sed -n 's/^Maintainer: //p' "$stage/debian/control")
	{
		printf 'bessai-edge (%s) bookworm; urgency=medium\n\n' "$version"
		printf '  * Build of %s from the working tree.\n\n' "$version"
		printf ' -- %s  %s\n\n' "$maintainer" "$(date -R)"
		cat "$repo/packaging/debian/changelog"
	} >"$stage/debian/changelog"
fi

(cd "$stage" && dpkg-buildpackage --build=binary --no-sign) >&2

mkdir -p "$dist"
# Copy, then rename within dist/, so a reader of dist/ never sees a partial file.
cp "$work/bessai-edge_${version}_${arch}.deb" "$deb.partial"
mv "$deb.partial" "$deb"
trap - EXIT
rm -rf "$work"
echo "$deb"
