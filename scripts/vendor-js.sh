#!/usr/bin/env bash
# The front-end packages the pages serve from their own static/ folder (never from a CDN):
# fetched from the npm registry at install time, checked against the pinned tarball digest,
# and only the built file is kept. Run by `make install`; does nothing when the file is there.
set -euo pipefail

dest="callcenter/pages/static/vendor"
name="chart.js"
version="4.6.2"
sha512="xachB+pPHjp0syJi7llUBA1w3kMYl6NF3o7eVrvjnWCT+IB2zMaF2pX5UYDiwbbfsioFEIRnAjreNOMsGj5TIA=="
file="$dest/chart.umd.min.js"

[ -s "$file" ] && exit 0
command -v npm >/dev/null 2>&1 || {
  echo "npm is needed once to fetch $name $version (apt-get install npm)" >&2
  exit 1
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
tgz="$tmp/$name-$version.tgz"
got="$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$sha512" ]; then
  echo "$name $version: the tarball's digest is not the pinned one; refusing it" >&2
  exit 1
fi
mkdir -p "$dest"
tar -xzf "$tgz" -C "$tmp" package/dist/chart.umd.min.js package/LICENSE.md
cp "$tmp/package/dist/chart.umd.min.js" "$file"
cp "$tmp/package/LICENSE.md" "$dest/chart.js.LICENSE.md"
echo "vendored $name $version into $dest"
