//go:build tools

// Package tools pins the commands kube-assets.sh builds.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
