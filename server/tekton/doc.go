// Package tekton serves Tekton Results' own API on Annals' store, so that
// its clients (tkn-results, the OpenShift console, Konflux, upstream's
// watcher) work unchanged: the gRPC service tekton.results.v1alpha2.Results
// with health and reflection, and the REST mapping of the same service under
// /apis/results.tekton.dev/v1alpha2/. REST is a thin layer over the gRPC
// handlers: both go through one interceptor (authentication, partial
// responses) and one implementation, and every access decision is made by
// package access with Tekton Results' resource and verb names.
package tekton
