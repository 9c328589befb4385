#!/usr/bin/env bash
# The API reference page (/docs) embeds Redoc's standalone bundle from npm
# (shared/docs/redoc.standalone.js, compiled into the binary with
# include_str!, so /docs needs no CDN and works offline). It is committed —
# 1.1 MB, one file — because every `cargo build` needs it, including the
# Lambda builds, which run no npm. This script fetches it from the npm
# registry at the pinned version and changes one thing: the Redocly logo of
# the menu's footer, the bundle's only request to another origin (which the
# page's policy would block, with a console error), becomes an empty `data:`
# image (Redoc then hides it). With --check (scripts/test.sh runs it) it
# fails when the committed file is not byte for byte that result.
#
# Usage: scripts/vendor-redoc.sh [--check]   (REDOC_VERSION to change the pin)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${REDOC_VERSION:-$(cat shared/docs/REDOC_VERSION)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "redoc@$version" --silent >/dev/null && tar xzf "redoc-$version.tgz")
bundle="$tmp/package/bundles/redoc.standalone.js"
logo='https://cdn.redoc.ly/redoc/logo-mini.svg'
if [[ $(grep -o "$logo" "$bundle" | wc -l) -ne 1 ]]; then
  echo "redoc@$version: expected the logo URL once in the bundle" >&2
  exit 1
fi
sed -i "s#$logo#data:,#" "$bundle"
if [[ ${1:-} == --check ]]; then
  if cmp -s "$bundle" shared/docs/redoc.standalone.js; then
    echo "shared/docs/redoc.standalone.js is redoc@$version's bundle"
  else
    echo "shared/docs/redoc.standalone.js is not redoc@$version's bundle: run scripts/vendor-redoc.sh" >&2
    exit 1
  fi
  exit 0
fi
cp "$bundle" shared/docs/redoc.standalone.js
cp "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" shared/docs/redoc.standalone.js.LICENSE.txt
cp "$tmp/package/LICENSE" shared/docs/REDOC-LICENSE
echo "$version" > shared/docs/REDOC_VERSION
echo "vendored redoc@$version ($(wc -c < shared/docs/redoc.standalone.js) bytes)"
