#!/usr/bin/env bash
# Builds SeaweedFS's weed (a real S3 server for the log store tests) from
# the Go module proxy, once, into a cache directory, and prints the path of
# the binary: the value for ANNALS_TEST_S3_WEED. weed is built inside its
# own module (its go.mod has replace directives, which `go install mod@v`
# refuses). The first build takes several minutes on 2 cores; later runs
# only check that the binary is there. Delete the directory to rebuild.
set -euo pipefail
version="v0.0.0-20261109003541-7506e5f91cd6"
dir="${ANNALS_SEAWEEDFS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/annals/seaweedfs/$version}"

if [ -x "$dir/weed" ]; then
  echo "$dir/weed"
  exit 0
fi

mkdir -p "$dir"
echo "building SeaweedFS weed $version into $dir (first time only)" >&2
src="$(cd / && go mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { echo "go mod download gave no source directory for seaweedfs" >&2; exit 1; }
# Build into a temporary name, so that an interrupted build is never taken
# for a finished one.
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$dir/weed.tmp" ./weed)
mv "$dir/weed.tmp" "$dir/weed"
echo "$dir/weed"
