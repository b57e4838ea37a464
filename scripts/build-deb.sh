#!/usr/bin/env bash
# Builds the Debian package: target/debian/teleavis_<version>_amd64.deb (README, "Installing as
# a service"). Installs cargo-deb 3.8 when missing, builds the binary, generates the man pages
# and shell completions from its clap definitions (`teleavis generate-assets`), then packages.
#
# Usage: scripts/build-deb.sh [--profile release|dev] [--output DIR]
#   --profile dev  packages the debug-profile binary (what `cargo test` already built): the
#                  package test uses it to check the packaging without a release build. The
#                  package to ship is the default, release.
# Prints the path of the .deb on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
output=target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--output DIR]" >&2; exit 2 ;;
  esac
done

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "^cargo-deb 3\.8\."; then
  echo "build-deb.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --locked "cargo-deb@$CARGO_DEB_VERSION" >&2
fi

case "$profile" in
  dev|debug) profile=dev; bindir=target/debug ;;
  *) bindir="target/$profile" ;;
esac

echo "build-deb.sh: building the $profile binary" >&2
cargo build --locked --profile "$profile" --bin teleavis >&2

rm -rf target/deb-assets
"$bindir/teleavis" generate-assets target/deb-assets >/dev/null

mkdir -p "$output"
# --no-build: the binary above is the one packaged (cargo-deb maps target/release/ in the
# asset list to the profile's folder).
fast=()
# The package test's throwaway package: quick compression rather than the smallest file.
[ "$profile" = dev ] && fast=(--fast)
cargo deb --no-build --locked --profile "$profile" "${fast[@]}" --output "$output" >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb="$output/teleavis_${version}_amd64.deb"
[ -f "$deb" ] || deb=$(ls -t "$output"/teleavis_*_amd64.deb | head -1)
echo "$deb"
