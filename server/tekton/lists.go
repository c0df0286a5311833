package tekton

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/annals-dev/annals/store"
)

// Page sizes of Tekton Results' lists (lister/limit.go).
const (
	defaultPageSize = 50
	minPageSize     = 5
	maxPageSize     = 10000
)

func pageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return defaultPageSize, nil
	case n < minPageSize || n > maxPageSize:
		// Upstream's wording, off by one: 5 and 10000 are accepted (B9).
		return 0, invalidf("invalid page size (%d): value must be greater than %d and less than %d", n, minPageSize, maxPageSize)
	}
	return int(n), nil
}

var orderRE = regexp.MustCompile(`^([\w\.]+)\s*(ASC|asc|DESC|desc)?$`)

var (
	resultOrders = map[string]store.OrderField{
		"create_time": store.OrderCreateTime, "update_time": store.OrderUpdateTime,
		"summary.start_time": store.OrderStartTime, "summary.end_time": store.OrderCompletionTime,
	}
	recordOrders = map[string]store.OrderField{"create_time": store.OrderCreateTime, "update_time": store.OrderUpdateTime}
)

// orderBy reads one "<field> [asc|desc]"; none is newest first (B8: any
// stable order will do, and the console, which sends none, wants that).
func orderBy(s string, fields map[string]store.OrderField) (store.OrderBy, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return store.OrderBy{Field: store.OrderCreateTime}, nil
	}
	m := orderRE.FindStringSubmatch(s)
	if m == nil {
		return store.OrderBy{}, invalidf("invalid order by statement: %q: give one field and an optional direction, e.g. \"create_time desc\"", s)
	}
	field, ok := fields[m[1]]
	if !ok {
		return store.OrderBy{}, invalidf("%s: field is unknown or cannot be used in the order by clause; the value must obey the format <field> [asc|desc], where field is one of %s",
			m[1], strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
	}
	return store.OrderBy{Field: field, Asc: strings.EqualFold(m[2], "asc")}, nil
}

// collect reads up to size items from token on, in store pages (at most
// store.MaxPageSize each), and returns the token of what follows: none
// when nothing does, so that a last page exactly full has no token.
func collect[T any](ctx context.Context, size int, token string, list func(ctx context.Context, first int, after string) (*store.Page[T], error)) ([]T, string, error) {
	var items []T
	after := token
	for len(items) < size {
		page, err := list(ctx, min(size-len(items), store.MaxPageSize), after)
		if err != nil {
			return nil, "", err
		}
		items = append(items, page.Items...)
		if !page.HasNextPage {
			return items, "", nil
		}
		after = page.EndCursor()
	}
	return items, after, nil
}
