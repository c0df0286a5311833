package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// CreateResult creates an empty Result in namespace. An empty uid gets a new
// UUID. It fails with ErrConflict when the Result exists.
func (s *Store) CreateResult(ctx context.Context, namespace, uid string, annotations map[string]string) (*Result, error) {
	if uid == "" {
		uid = newUID()
	}
	if _, _, err := ParseResultName(ResultName(namespace, uid)); err != nil {
		return nil, err
	}
	if err := checkAnnotationKeys(annotations); err != nil {
		return nil, err
	}
	t := now()
	res := &Result{UID: uid, Namespace: namespace, Name: ResultName(namespace, uid), SummaryStatus: StatusUnknown, CreatedAt: t, UpdatedAt: t, Version: 1}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		out, err := tx.NewInsert().Model(res).On("CONFLICT DO NOTHING").Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: result %q already exists", ErrConflict, res.Name)
		}
		return setAnnotations(ctx, tx, res.Key(), annotations)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// GetResult returns the Result with the given name.
func (s *Store) GetResult(ctx context.Context, name string) (*Result, error) {
	if _, _, err := ParseResultName(name); err != nil {
		return nil, err
	}
	res := new(Result)
	if err := s.db.NewSelect().Model(res).Where("name = ?", name).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: result %q", ErrNotFound, name)
		}
		return nil, dbError(err)
	}
	return res, nil
}

// GetResultsByName returns the Results with the given names, in one statement.
// Names that do not exist are absent from the map.
func (s *Store) GetResultsByName(ctx context.Context, names []string) (map[string]*Result, error) {
	return getBy[Result](ctx, s, "", "name", names, func(r *Result) string { return r.Name })
}

// GetResultsByUID returns the Results of one namespace with the given uids,
// in one statement.
func (s *Store) GetResultsByUID(ctx context.Context, namespace string, uids []string) (map[string]*Result, error) {
	return getBy[Result](ctx, s, namespace, "uid", uids, func(r *Result) string { return r.UID })
}

// getBy reads rows whose column is one of keys; a namespace other than ""
// also restricts them to that namespace.
func getBy[T any](ctx context.Context, s *Store, namespace, column string, keys []string, key func(*T) string) (map[string]*T, error) {
	out := make(map[string]*T, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var rows []*T
	q := s.db.NewSelect().Model(&rows)
	if namespace != "" {
		q = q.Where("namespace = ?", namespace)
	}
	if err := q.Where("? IN (?)", bun.Ident(column), bun.In(keys)).Scan(ctx); err != nil {
		return nil, dbError(err)
	}
	for _, r := range rows {
		out[key(r)] = r
	}
	return out, nil
}

// DeleteResult deletes a Result with its Records, annotations and logs. An
// empty etag deletes whatever the current version.
func (s *Store) DeleteResult(ctx context.Context, name, etag string) error {
	res, err := s.GetResult(ctx, name)
	if err != nil {
		return err
	}
	if etag != "" && etag != res.Etag() {
		return staleEtag("result", name, etag, res.Etag())
	}
	var announced func()
	err = s.writeTx(ctx, func(ctx context.Context, tx bun.IDB) error {
		// Its Records go by cascade: announce them as deleted.
		changes, err := deletedRecords(ctx, tx, "r.namespace = ? AND r.result_uid = ?", res.Namespace, res.UID)
		if err != nil {
			return err
		}
		q := tx.NewDelete().Model((*Result)(nil)).Where("namespace = ?", res.Namespace).Where("uid = ?", res.UID)
		if etag != "" {
			q = q.Where("version = ?", res.Version)
		}
		out, err := q.Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: result %q changed or was deleted meanwhile: read it again", ErrConflict, name)
		}
		announced, err = s.announceChanges(ctx, tx, changes)
		return err
	})
	if err != nil {
		return err
	}
	announced()
	return nil
}

// UpdateResultAnnotations sets and removes annotations of a Result in one
// transaction and bumps its version. An empty etag skips the version check.
func (s *Store) UpdateResultAnnotations(ctx context.Context, name string, set map[string]string, remove []string, etag string) (*Result, error) {
	if err := checkAnnotationKeys(set); err != nil {
		return nil, err
	}
	return s.changeResult(ctx, name, etag, func(ctx context.Context, tx bun.Tx, res *Result) error {
		if err := setAnnotations(ctx, tx, res.Key(), set); err != nil {
			return err
		}
		if len(remove) > 0 {
			if _, err := tx.NewDelete().Model((*Annotation)(nil)).Where("namespace = ?", res.Namespace).Where("result_uid = ?", res.UID).
				Where("key IN (?)", bun.In(remove)).Exec(ctx); err != nil {
				return dbError(err)
			}
		}
		return nil
	}, nil)
}

// changeResult reads the named Result, checks etag (empty: no check), runs
// change in the same transaction, then bumps the version, with set adding
// columns to that update (nil: none). A Result changed meanwhile is
// ErrConflict. It returns the Result as updated.
func (s *Store) changeResult(ctx context.Context, name, etag string, change func(context.Context, bun.Tx, *Result) error, set func(*bun.UpdateQuery) *bun.UpdateQuery) (*Result, error) {
	var res Result
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&res).Where("name = ?", name).Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: result %q", ErrNotFound, name)
			}
			return dbError(err)
		}
		if etag != "" && etag != res.Etag() {
			return staleEtag("result", name, etag, res.Etag())
		}
		if err := change(ctx, tx, &res); err != nil {
			return err
		}
		q := tx.NewUpdate().Model(&res).Set("version = version + 1").Set("updated_at = ?", now())
		if set != nil {
			q = set(q)
		}
		out, err := q.Where("namespace = ?", res.Namespace).Where("uid = ?", res.UID).Where("version = ?", res.Version).
			Returning("*").Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: result %q changed meanwhile: read it again", ErrConflict, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

func setAnnotations(ctx context.Context, tx bun.Tx, result Key, set map[string]string) error {
	if len(set) == 0 {
		return nil
	}
	rows := make([]Annotation, 0, len(set))
	for k, v := range set {
		rows = append(rows, Annotation{Namespace: result.Namespace, ResultUID: result.UID, Key: k, Value: v})
	}
	_, err := tx.NewInsert().Model(&rows).On("CONFLICT (namespace, result_uid, key) DO UPDATE").Set("value = EXCLUDED.value").Exec(ctx)
	return dbError(err)
}

func checkAnnotationKeys(m map[string]string) error {
	for k, v := range m {
		if k == "" || len(k) > 317 {
			return fmt.Errorf("%w: annotation key %q: keys are 1 to 317 characters", ErrInvalidArgument, k)
		}
		if len(v) > 256*1024 {
			return fmt.Errorf("%w: annotation %q: values are at most 256 KiB", ErrInvalidArgument, k)
		}
	}
	return nil
}

// AnnotationsByResult returns the annotations of many Results, sorted by
// key, in one statement.
func (s *Store) AnnotationsByResult(ctx context.Context, results []Key) (map[Key][]Annotation, error) {
	out := make(map[Key][]Annotation, len(results))
	if len(results) == 0 {
		return out, nil
	}
	cond, args := keysSQL("namespace", "result_uid", results)
	var rows []Annotation
	if err := s.queryRows(ctx, &rows, "SELECT namespace, result_uid, key, value FROM result_annotations WHERE "+cond+
		" ORDER BY namespace, result_uid, key", args...); err != nil {
		return nil, err
	}
	for _, a := range rows {
		k := Key{a.Namespace, a.ResultUID}
		out[k] = append(out[k], a)
	}
	return out, nil
}

func staleEtag(kind, name, given, current string) error {
	return fmt.Errorf("%w: %s %q has etag %q, not %q: read it again and retry with the current etag", ErrConflict, kind, name, current, given)
}

// Namespaces lists the namespaces that hold Results: the candidates when a
// caller may list only some namespaces.
//
// It hops from one namespace to the next along the (namespace, ...) index,
// one probe per namespace, instead of reading every Result as DISTINCT
// would: 95 ms against under 5 ms at 150,000 Results on PostgreSQL.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	var rows []struct {
		N string `bun:"n"`
	}
	err := s.queryRows(ctx, &rows, `WITH RECURSIVE ns(n) AS (
  SELECT min(namespace) FROM results
  UNION ALL
  SELECT (SELECT min(namespace) FROM results WHERE namespace > ns.n) FROM ns WHERE ns.n IS NOT NULL
) SELECT n FROM ns WHERE n IS NOT NULL`)
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.N
	}
	return out, err
}
