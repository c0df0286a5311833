// Package proto holds the protocol buffer sources of the Tekton Results API
// (v1alpha2 Results and Logs, v1alpha3 Logs) that Annals serves, and the Go
// code generated from them. The generators are pinned as Go tools in
// go.mod; protoc is Debian's protobuf-compiler (.ci/test installs it).
package proto

//go:generate sh generate.sh
