package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// postgresParts splits the test server's URL into what the other forms of
// a database URL are made of; it skips the test when PostgreSQL is not
// there (outside CI).
func postgresParts(t *testing.T) *pgconn.Config {
	t.Helper()
	storetest.Open(t, "postgres") // skips or fails the test as the project's tests do
	cfg, err := pgconn.ParseConfig(storetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDatabaseURLForms: PostgreSQL in every form pgx knows opens
// PostgreSQL, SQLite only in its explicit forms, and anything else is
// refused, naming what was given (without its password) and what is
// accepted, and creating no file.
func TestDatabaseURLForms(t *testing.T) {
	pg := postgresParts(t)
	dir := t.TempDir()
	t.Chdir(dir)
	base := storetest.PostgresURL()
	scheme, rest, _ := strings.Cut(base, "://")
	keyword := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", pg.Host, pg.Port, pg.User, pg.Database)
	for _, c := range []struct {
		name, url string
		want      filter.Dialect
		refused   bool
	}{
		{name: "URL", url: base, want: filter.Postgres},
		{name: "capitalised scheme", url: "Postgres://" + rest, want: filter.Postgres},
		{name: "upper-case postgresql scheme", url: "POSTGRESQL://" + rest, want: filter.Postgres},
		{name: "keyword form", url: keyword, want: filter.Postgres},
		{name: "keyword form with a quoted password", url: keyword + " password='s3cret word'", want: filter.Postgres},
		{name: "surrounding spaces", url: "  " + scheme + "://" + rest + " ", want: filter.Postgres},
		{name: "absolute path", url: filepath.Join(dir, "a.db"), want: filter.SQLite},
		{name: "relative .db", url: "b.db", want: filter.SQLite},
		{name: "relative .sqlite3", url: "b.sqlite3", want: filter.SQLite},
		{name: "dot slash, no extension", url: "./c", want: filter.SQLite},
		{name: "sqlite: relative", url: "sqlite:d", want: filter.SQLite},
		{name: "sqlite:// absolute", url: "sqlite://" + filepath.Join(dir, "e"), want: filter.SQLite},
		{name: "SQLITE: upper case", url: "SQLITE:f", want: filter.SQLite},
		{name: "file: with a query", url: "file:" + filepath.Join(dir, "g.db") + "?cache=shared", want: filter.SQLite},
		{name: "bare word", url: "annals", refused: true},
		{name: "other scheme with a password", url: "mysql://root:s3cret@db:3306/annals", refused: true},
		{name: "http URL ending in .db", url: "http://host/x.db", refused: true},
		{name: "empty", url: " ", refused: true},
		{name: "sqlite: without a path", url: "sqlite:", refused: true},
		{name: "broken keyword form", url: "host=db port=notaport password=s3cret dbname=x", refused: true},
		{name: "broken URL", url: "postgres://u:s3cret@db:notaport/x", refused: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			s, err := store.Open(context.Background(), c.url, store.Options{})
			if c.refused {
				if err == nil {
					s.Close()
					t.Fatalf("Open(%q) succeeded (%s); want a refusal", c.url, s.Dialect())
				}
				if !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), "sqlite:PATH") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("Open(%q): %v; want an invalid argument naming the accepted forms, without the password", c.url, err)
				}
				if after, _ := os.ReadDir(dir); len(after) != len(before) {
					t.Errorf("Open(%q) created a file", c.url)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", c.url, err)
			}
			defer s.Close()
			if s.Dialect() != c.want {
				t.Errorf("Open(%q) opened %s, want %s", c.url, s.Dialect(), c.want)
			}
		})
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	for _, in := range []string{
		"postgres://annals:s3cret@db:5432/annals?sslmode=disable",
		"Postgres://annals:s3cret@db/annals",
		"postgres://annals:s3c%2Fret@db/annals",
		"postgres://annals:s3c@ret@db/annals",
		"postgres://annals@db/annals?sslmode=disable&password=s3cret",
		"postgres://annals@db/annals?sslpassword=s3cret&password=s3cret",
		"host=db user=annals password=s3cret dbname=annals",
		"host=db user=annals password = s3cret dbname=annals",
		"host=db user=annals password='s3cret and more' dbname=annals",
		"host=db PASSWORD=s3cret",
		`cannot open "host=db password=s3cret": refused`,
	} {
		got := store.RedactDatabaseURL(in)
		if strings.Contains(got, "s3c") || !strings.Contains(got, "xxxxx") || !strings.Contains(got, "db") {
			t.Errorf("RedactDatabaseURL(%q) = %q", in, got)
		}
	}
	if got := store.RedactDatabaseURL("/var/lib/annals/annals.db"); got != "/var/lib/annals/annals.db" {
		t.Errorf("a path changed: %q", got)
	}
}

// silentDatabase accepts connections and never answers, as a database
// host behind a broken proxy does.
func silentDatabase(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestConnectTimeout: opening a database that accepts and never answers
// fails after the connect timeout (the URL's connect_timeout winning over
// the option), as ErrUnavailable, instead of waiting forever.
func TestConnectTimeout(t *testing.T) {
	t.Chdir(t.TempDir()) // were a URL taken for a SQLite path, its file goes there
	addr := silentDatabase(t)
	host, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		name string
		url  string
		opts store.Options
	}{
		{"option", "postgres://annals:s3cret@" + addr + "/annals?sslmode=disable", store.Options{ConnectTimeout: time.Second}},
		{"URL wins", "postgres://annals@" + addr + "/annals?sslmode=disable&connect_timeout=1", store.Options{ConnectTimeout: time.Hour}},
		{"keyword form", "host=" + host + " port=" + port + " user=annals password=s3cret sslmode=disable", store.Options{ConnectTimeout: time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				s, err := store.Open(context.Background(), c.url, c.opts)
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "database unreachable") || !strings.Contains(err.Error(), "connect timeout") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("Open of a silent database: %v; want ErrUnavailable, without the password", err)
				}
			case <-time.After(30 * time.Second): // generous: the timeout is 1 s
				t.Fatal("Open of a database that never answers did not give up")
			}
		})
	}
}

// TestReadyFailsWhenWritesFail: a database that answers reads but refuses
// writes (a full disk, a read-only file or server) is not ready, and says why.
func TestReadyFailsWhenWritesFail(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			s, url := storetest.Open(t, kind)
			if err := s.Ready(ctx); err != nil {
				t.Fatalf("a writable store: %v", err)
			}
			readOnly := "file:" + url + "?mode=ro"
			if kind == "postgres" {
				readOnly = url + "&default_transaction_read_only=on"
			}
			ro, err := store.Open(ctx, readOnly, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if err := ro.Ready(ctx); err == nil || !strings.Contains(err.Error(), "writes fail") {
				t.Errorf("Ready of a store that cannot write: %v; want an error saying writes fail", err)
			}
		})
	}
}
