#!/bin/sh
# Regenerates the Go code of the protos with the generators pinned in go.mod
# (built into a temporary directory, since protoc wants executables).
set -eu
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
for v in v1alpha2 v1alpha3; do
  protoc -I "$v" -I third_party \
    --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
    --go_out="$v" --go_opt=paths=source_relative \
    --go-grpc_out="$v" --go-grpc_opt=paths=source_relative \
    $(cd "$v" && ls *.proto)
done
