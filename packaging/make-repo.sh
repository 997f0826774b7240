#!/bin/sh
# Make a flat, unsigned APT repository from the .deb files in a directory.
#
# usage: packaging/make-repo.sh [DEB_DIR [REPO_DIR]]
#   DEB_DIR   where the .deb files are (default: dist/)
#   REPO_DIR  the repository to write (default: dist/apt); it is replaced
#
# Then add it as a source and install by name:
#   echo "deb [trusted=yes] file:REPO_DIR ./" >/etc/apt/sources.list.d/bessai.list
#   apt update && apt install bessai-edge
# trusted=yes is needed because the repository has no signature; serve it over
# HTTP(S) with a signed Release file before using it beyond one machine or a lab.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
deb_dir=$(realpath "${1:-$repo/dist}")
repo_dir=$(realpath -m "${2:-$repo/dist/apt}")

found=0
for deb in "$deb_dir"/*.deb; do
	[ -e "$deb" ] && found=1
done
if [ "$found" = 0 ]; then
	echo "make-repo.sh: no .deb files in $deb_dir; run 'make deb' first" >&2
	exit 1
fi

rm -rf "$repo_dir"
mkdir -p "$repo_dir"
cp "$deb_dir"/*.deb "$repo_dir"/
cd "$repo_dir"
# --multiversion keeps every version, so a repository can offer an upgrade and
# still hold the version it replaces.
dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null
gzip -9 --keep --no-name Packages
# Written outside the repository first: apt-ftparchive would list a Release file it
# finds in the directory, including the one being written.
release=$(mktemp)
apt-ftparchive \
	-o APT::FTPArchive::Release::Origin=bessai-edge \
	-o APT::FTPArchive::Release::Label=bessai-edge \
	-o APT::FTPArchive::Release::Suite=local \
	release . >"$release"
mv "$release" Release
chmod 0644 Release

echo "deb [trusted=yes] file:$repo_dir ./"
