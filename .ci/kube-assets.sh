#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy (see kube-tools/),
# once, into a cache directory, and prints that directory: the value for
# KUBEBUILDER_ASSETS. The first build takes 5 to 10 minutes on 2 cores; later
# runs only check that the binaries are there. Delete the directory to rebuild.
set -euo pipefail
tools="$(cd "$(dirname "$0")/kube-tools" && pwd)"
version="$(grep -Eo 'k8s.io/kubernetes v[0-9.]+' "$tools/go.mod" | head -1 | cut -d" " -f2)"
dir="${ANNALS_KUBE_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/annals/kube-assets/$version}"

if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
echo "building kube-apiserver $version and etcd into $dir (first time only)" >&2
cd "$tools"
# Build into temporary names, so that an interrupted build is never taken
# for a finished one.
CGO_ENABLED=0 go build -mod=mod -trimpath -o "$dir/etcd.tmp" ./etcd
CGO_ENABLED=0 go build -mod=mod -trimpath -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$dir/etcd.tmp" "$dir/etcd"
mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
echo "$dir"
