package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// The playground's assets, built by server/assets/src (npm run build) and
// committed: the bundles are stored only precompressed (name.gz, and
// name.br where brotli pays), other files as they are.
//
//go:embed assets/dist/*.gz assets/dist/*.br assets/dist/*.svg
var assetFiles embed.FS

// asset is one file of the playground, in every encoding stored.
type asset struct {
	contentType string
	hash        string // of the content as stored: in the URL and the ETag
	plain       []byte // nil when only compressed forms are stored
	gzip        []byte
	brotli      []byte
}

// assetSet maps each asset's content-hashed name (playground.3f9a0c2d1e4b.js)
// to it. The hash in the name lets browsers keep an asset forever: a new
// build is a new name.
type assetSet struct {
	byHashedName map[string]*asset
	hashedName   map[string]string // playground.js -> playground.3f9a0c2d1e4b.js
}

var playgroundAssets = mustLoadAssets(assetFiles, "assets/dist")

func mustLoadAssets(fsys fs.FS, dir string) *assetSet {
	set, err := loadAssets(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("the embedded playground assets: %v", err))
	}
	return set
}

func loadAssets(fsys fs.FS, dir string) (*assetSet, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	byName := map[string]*asset{}
	for _, e := range entries {
		content, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		name := e.Name()
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".br")
		a := byName[base]
		if a == nil {
			a = &asset{}
			byName[base] = a
		}
		switch {
		case strings.HasSuffix(name, ".gz"):
			a.gzip = content
		case strings.HasSuffix(name, ".br"):
			a.brotli = content
		default:
			a.plain = content
		}
	}
	set := &assetSet{byHashedName: map[string]*asset{}, hashedName: map[string]string{}}
	for name, a := range byName {
		if a.plain == nil && a.gzip == nil {
			return nil, fmt.Errorf("%s is stored only as brotli: every client must be able to get it (rebuild with npm run build)", name)
		}
		a.contentType = mime.TypeByExtension(path.Ext(name))
		if a.contentType == "" {
			return nil, fmt.Errorf("%s: no content type for its extension", name)
		}
		h := sha256.New()
		h.Write(a.plain)
		h.Write(a.gzip)
		h.Write(a.brotli)
		a.hash = hex.EncodeToString(h.Sum(nil))[:12]
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + a.hash + ext
		set.byHashedName[hashed] = a
		set.hashedName[name] = hashed
	}
	return set, nil
}

// url is the path at which the asset stored as name is served.
func (s *assetSet) url(name string) string {
	hashed, ok := s.hashedName[name]
	if !ok {
		panic("no playground asset " + name) // a page naming an asset that the build did not make
	}
	return "/assets/" + hashed
}

// ServeHTTP serves GET /assets/<hashed name>: forever cacheable, 304 to a
// browser that has it, brotli or gzip as the request accepts, else plain.
func (s *assetSet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := s.byHashedName[strings.TrimPrefix(r.URL.Path, "/assets/")]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	accepts := acceptedEncodings(r.Header.Get("Accept-Encoding"))
	var body []byte
	encoding, etag := "", `"`+a.hash+`"`
	switch {
	case a.brotli != nil && accepts["br"]:
		body, encoding = a.brotli, "br"
	case a.gzip != nil && accepts["gzip"]:
		body, encoding = a.gzip, "gzip"
	default:
		body = a.plain // nil when only gzip is stored: gunzipped below
	}
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
		etag = `"` + a.hash + "-" + encoding + `"`
	}
	h.Set("ETag", etag)
	// The content never changes under its name: whichever encoding the
	// browser holds, it is current.
	if etagMatches(r.Header.Get("If-None-Match"), a.hash) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if body == nil {
		zr, err := gzip.NewReader(bytes.NewReader(a.gzip))
		if err != nil {
			http.Error(w, "the stored asset is damaged", http.StatusInternalServerError)
			return
		}
		io.Copy(w, zr)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// etagMatches tells whether If-None-Match names any encoding of the asset
// with this hash (or is "*").
func etagMatches(ifNoneMatch, hash string) bool {
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" {
			return true
		}
		tag = strings.Trim(tag, `"`)
		if tag == hash || strings.HasPrefix(tag, hash+"-") {
			return true
		}
	}
	return false
}

// acceptedEncodings reads Accept-Encoding: the codings named without q=0
// ("*" standing for those not named).
func acceptedEncodings(header string) map[string]bool {
	accepted := map[string]bool{}
	wildcard, named := false, map[string]bool{}
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding == "" {
			continue
		}
		ok := true
		for _, p := range strings.Split(params, ";") {
			if k, v, found := strings.Cut(strings.TrimSpace(p), "="); found && strings.EqualFold(strings.TrimSpace(k), "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				ok = err == nil && q > 0
			}
		}
		if coding == "*" {
			wildcard = ok
			continue
		}
		named[coding] = true
		accepted[coding] = ok
	}
	if wildcard {
		for _, coding := range []string{"br", "gzip"} {
			if !named[coding] {
				accepted[coding] = true
			}
		}
	}
	return accepted
}
