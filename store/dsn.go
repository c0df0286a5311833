package store

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/store/filter"
)

// DefaultConnectTimeout bounds how long opening one database connection may
// take when neither Options.ConnectTimeout nor the URL's connect_timeout
// says otherwise: a database that accepts connections and never answers
// must not hold requests until their own timeout.
const DefaultConnectTimeout = 5 * time.Second

// AcceptedDatabaseURLs lists the accepted forms of a database URL, for
// error messages and help texts.
const AcceptedDatabaseURLs = "PostgreSQL as a URL (postgres://user:pass@host:5432/db?sslmode=verify-full; " +
	"postgresql:// too, in any case) or in libpq keyword form ('host=db user=annals dbname=annals'); " +
	"SQLite as sqlite:PATH, sqlite://PATH, file:PATH, or a path that ends in .db, .sqlite or .sqlite3 " +
	"or starts with /, ./ or ../"

// database is a database URL resolved to a dialect and the connection
// string its driver takes.
type database struct {
	dialect  filter.Dialect
	dsn      string   // for pgx (a URL with a lower-case scheme, or keyword form) or modernc (file:...)
	password []string // spellings of the password in the given URL, kept out of errors
}

var (
	// urlScheme matches "scheme://" at the start of a URL.
	urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	// keywordForm matches the start of a libpq keyword/value string ("host=...").
	keywordForm = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)
	// keywordConnectTimeout finds connect_timeout in keyword form.
	keywordConnectTimeout = regexp.MustCompile(`(^|\s)connect_timeout\s*=`)
)

// parseDatabaseURL decides what raw names. Anything that is not plainly
// PostgreSQL or SQLite is refused, so that a mistyped PostgreSQL URL never
// becomes an empty SQLite file named after it. connectTimeout is added to a
// PostgreSQL connection string that does not set connect_timeout itself.
func parseDatabaseURL(raw string, connectTimeout time.Duration) (*database, error) {
	given := strings.TrimSpace(raw)
	db := &database{password: passwordsIn(given)}
	if given == "" {
		return nil, fmt.Errorf("%w: the database URL is empty; give %s", ErrInvalidArgument, AcceptedDatabaseURLs)
	}
	lower := strings.ToLower(given)
	scheme := ""
	if m := urlScheme.FindStringSubmatch(given); m != nil {
		scheme = strings.ToLower(m[1])
	}
	switch {
	case scheme == "postgres" || scheme == "postgresql":
		// pgx recognises the scheme in lower case only.
		db.dsn = scheme + given[len(scheme):]
		return db.postgres(connectTimeout)
	case strings.HasPrefix(lower, "sqlite:"):
		path := given[len("sqlite:"):]
		path = strings.TrimPrefix(path, "//")
		return db.sqlite(path)
	case strings.HasPrefix(lower, "file:"):
		return db.sqlite(given[len("file:"):])
	case scheme != "":
		return nil, fmt.Errorf("%w: database URL %q: scheme %q is not supported; give %s",
			ErrInvalidArgument, db.redact(given), scheme, AcceptedDatabaseURLs)
	case keywordForm.MatchString(given):
		db.dsn = given
		return db.postgres(connectTimeout)
	case looksLikeSQLitePath(given):
		return db.sqlite(given)
	}
	return nil, fmt.Errorf("%w: database URL %q is neither a PostgreSQL URL nor a SQLite file path; give %s",
		ErrInvalidArgument, db.redact(given), AcceptedDatabaseURLs)
}

// looksLikeSQLitePath accepts what is plainly a file path: a name ending in
// a SQLite extension, or a path starting at the root or the current
// directory. A bare word ("annals", "prod") is refused as too ambiguous.
func looksLikeSQLitePath(p string) bool {
	if p == ":memory:" {
		return true
	}
	name, _, _ := strings.Cut(p, "?")
	lower := strings.ToLower(name)
	for _, ext := range []string{".db", ".sqlite", ".sqlite3"} {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	for _, prefix := range []string{"/", "./", "../"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func (db *database) postgres(connectTimeout time.Duration) (*database, error) {
	if _, err := pgconn.ParseConfig(db.dsn); err != nil {
		return nil, fmt.Errorf("%w: PostgreSQL database URL %q: %s; give %s",
			ErrInvalidArgument, db.redact(db.dsn), db.redact(parseErrorDetail(err)), AcceptedDatabaseURLs)
	}
	db.dialect = filter.Postgres
	if connectTimeout > 0 && !db.setsConnectTimeout() {
		// connect_timeout counts whole seconds; round up so that a small
		// timeout never turns into none.
		secs := strconv.FormatInt(int64((connectTimeout+time.Second-1)/time.Second), 10)
		if urlScheme.MatchString(db.dsn) {
			sep := "?"
			if strings.Contains(db.dsn, "?") {
				sep = "&"
			}
			db.dsn += sep + "connect_timeout=" + secs
		} else {
			db.dsn += " connect_timeout=" + secs
		}
	}
	return db, nil
}

// setsConnectTimeout tells whether the URL (or PGCONNECT_TIMEOUT, which pgx
// reads too) already chooses a connect timeout.
func (db *database) setsConnectTimeout() bool {
	if os.Getenv("PGCONNECT_TIMEOUT") != "" {
		return true
	}
	if urlScheme.MatchString(db.dsn) {
		u, err := url.Parse(db.dsn)
		return err == nil && u.Query().Has("connect_timeout")
	}
	return keywordConnectTimeout.MatchString(db.dsn)
}

// parseErrorDetail is what pgx found wrong, without the connection string
// it quotes.
func parseErrorDetail(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return pe.Unwrap().Error()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+3:]
	}
	return msg
}

func (db *database) sqlite(path string) (*database, error) {
	if p, _, _ := strings.Cut(path, "?"); p == "" {
		return nil, fmt.Errorf("%w: SQLite database URL %q names no file; give %s", ErrInvalidArgument, db.redact(path), AcceptedDatabaseURLs)
	}
	db.dialect, db.dsn = filter.SQLite, sqliteDSN(path)
	return db, nil
}

// redact hides the password of the URL in s, in every spelling it was given.
func (db *database) redact(s string) string {
	s = RedactDatabaseURL(s)
	for _, p := range db.password {
		if p != "" {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	return s
}

// scrub keeps the password out of an error, keeping what it wraps.
func (db *database) scrub(err error) error {
	if err == nil || db == nil {
		return err
	}
	if msg := db.redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// redactedError is an error whose text had a password removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

var (
	// userinfoPassword is the password of "scheme://user:password@host".
	userinfoPassword = regexp.MustCompile(`(://[^:/?#@\s]*:)(\S*)@`)
	// passwordParam is password= or sslpassword= in a query string or in
	// keyword form, quoted ('...', with \' escapes) or not.
	passwordParam = regexp.MustCompile(`(?i)((?:^|[\s?&;])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&;]*)`)
)

// RedactDatabaseURL hides every password in a database URL, whatever its
// form: "postgres://user:xxxxx@host", "?password=xxxxx",
// "password=xxxxx" in keyword form. Other text passes unchanged, so it can
// also clean a message that quotes a URL.
func RedactDatabaseURL(s string) string {
	s = userinfoPassword.ReplaceAllString(s, "${1}xxxxx@")
	return passwordParam.ReplaceAllString(s, "${1}xxxxx")
}

// passwordsIn lists the passwords written in a database URL, raw and
// decoded, so that they can be scrubbed from messages that quote them in
// another shape (a driver's error, say).
func passwordsIn(s string) []string {
	var out []string
	add := func(p string) {
		p = strings.Trim(p, "'")
		if len(p) >= 3 { // shorter ones would blank out unrelated text
			out = append(out, p)
			if d, err := url.QueryUnescape(p); err == nil && d != p {
				out = append(out, d)
			}
		}
	}
	for _, m := range userinfoPassword.FindAllStringSubmatch(s, -1) {
		add(m[2])
	}
	for _, m := range passwordParam.FindAllStringSubmatch(s, -1) {
		add(m[2])
	}
	return out
}

// IsUnavailable tells whether err comes from a database that could not be
// reached, whether or not the store has marked it with ErrUnavailable yet.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) || unavailable(err) }

// unavailable tells whether err is a failure to reach the database at all
// (refused, timed out while connecting, unreachable host, connection lost),
// as opposed to a statement the database refused.
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne *net.OpError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// unavailableError marks a failure to reach the database as ErrUnavailable
// while keeping the driver's words.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }
