package server

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// localOnly guards a server without authentication (--auth=none) from web
// pages the user happens to visit. Such a page may send requests to the
// user's loopback address directly (its Origin gives it away) or through a
// name of its own that it rebinds to 127.0.0.1 (then the Host header gives
// it away), and read or change everything. Every request, WebSocket
// upgrades and /logs included, must therefore name a loopback host (unless
// anyHost, for --insecure-allow-unauthenticated-remote-access) and come
// from a page of this server or from no page at all.
func localOnly(anyHost bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !anyHost && !loopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("refused: Host %q is not a loopback name. Without authentication (--auth=none) "+
				"Annals answers only requests addressed to localhost, 127.0.0.1 or [::1], so that no web page can reach it "+
				"through a name of its own (DNS rebinding). Use http://localhost:PORT/, or serve with --auth=kubernetes.", r.Host),
				http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(origin, r) {
			http.Error(w, fmt.Sprintf("refused: cross-origin request from %q. Without authentication (--auth=none) "+
				"Annals answers only its own pages (Origin %q) and clients that send no Origin, so that other web pages "+
				"cannot use it; serve with --auth=kubernetes to let other sites call it with a token.", origin, selfOrigin(r)),
				http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost tells whether a Host header (name or IP, with or without a
// port) names this machine's loopback interface.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin tells whether origin (scheme://host[:port]) is this server as
// the request addressed it.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false // includes "null", sent by sandboxed and file:// pages
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return false
	}
	return strings.EqualFold(withPort(u.Host, scheme), withPort(r.Host, requestScheme(r)))
}

// selfOrigin is the Origin of this server's own pages for r.
func selfOrigin(r *http.Request) string { return requestScheme(r) + "://" + r.Host }

func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// withPort adds the scheme's default port to a host that has none.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
}
