package server_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestLogDownloadRangesAndGzip: GET /logs answers HTTP ranges from the
// chunks they cover, and gzip when asked, from database rows and from an
// object store (compressed at rest too).
func TestLogDownloadRangesAndGzip(t *testing.T) {
	backends := map[string]func(t *testing.T) store.Options{
		"rows": func(*testing.T) store.Options { return store.Options{} },
		"objects": func(t *testing.T) store.Options {
			return store.Options{LogStore: "file://" + t.TempDir() + "?metadata=skip"}
		},
		"objects-zstd": func(t *testing.T) store.Options {
			return store.Options{LogStore: "file://" + t.TempDir() + "?metadata=skip", LogCompression: "zstd"}
		},
	}
	for name, opts := range backends {
		t.Run(name, func(t *testing.T) {
			s, _ := storetest.OpenWith(t, "sqlite", opts(t))
			fixture(t, s)
			log, text := bigLog(t, s)
			srv := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			get := func(header ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/logs/"+log.Name, nil)
				for i := 0; i < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp, string(body)
			}
			size := len(text)
			for _, c := range []struct {
				rng, want, contentRange string
				status                  int
			}{
				{"bytes=262140-262150", string(text[262140:262151]), fmt.Sprintf("bytes 262140-262150/%d", size), http.StatusPartialContent},
				{"bytes=-10", string(text[size-10:]), "", http.StatusPartialContent},
				{"bytes=4000000-", string(text[4000000:]), "", http.StatusPartialContent},
				{"bytes=99999999-", "", "", http.StatusRequestedRangeNotSatisfiable},
			} {
				resp, body := get("Range", c.rng)
				if resp.StatusCode != c.status || (c.status == http.StatusPartialContent && body != c.want) {
					t.Errorf("%s: status %d, %d bytes; want %d, %d bytes", c.rng, resp.StatusCode, len(body), c.status, len(c.want))
				}
				if c.contentRange != "" && resp.Header.Get("Content-Range") != c.contentRange {
					t.Errorf("%s: Content-Range %q", c.rng, resp.Header.Get("Content-Range"))
				}
			}
			// Two ranges: a multipart answer holding both.
			resp, body := get("Range", "bytes=0-3,300000-300003")
			if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
				!strings.Contains(body, string(text[:4])) || !strings.Contains(body, string(text[300000:300004])) {
				t.Errorf("multi-range: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			// Whole, plain: Content-Length.
			resp, body = get()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(size) || body != string(text) {
				t.Errorf("whole: %d, Content-Length %d, %d bytes", resp.StatusCode, resp.ContentLength, len(body))
			}
			// Whole, gzip.
			resp, body = get("Accept-Encoding", "br, gzip;q=0.8")
			if resp.Header.Get("Content-Encoding") != "gzip" || len(body) >= size/2 {
				t.Fatalf("gzip: Content-Encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(body))
			}
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := io.ReadAll(zr); err != nil || string(plain) != string(text) {
				t.Errorf("gzip body decompresses to %d bytes (%v), want %d", len(plain), err, size)
			}
			if resp, _ := get("Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
				t.Error("gzip sent to a client that refused it")
			}
		})
	}
}

// TestLogDownloadStoreDown: a log in an object store that is down is a
// 503, not a broken or empty download.
func TestLogDownloadStoreDown(t *testing.T) {
	s3 := storetest.StartS3(t)
	s, _ := storetest.OpenWith(t, "sqlite", store.Options{LogStore: s3.URL()})
	fixture(t, s)
	log, _ := bigLog(t, s)
	srv := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
	defer srv.Close()
	s3.Stop()
	resp, err := http.Get(srv.URL + "/logs/" + log.Name)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "unavailable") {
		t.Errorf("status %d %q; want 503", resp.StatusCode, body)
	}
}
