package graph

import (
	"context"

	"github.com/annals-dev/annals/store"
)

// connection is a page of a list, counted only when totalCount is asked.
type connection[T any] struct {
	page  *store.Page[T]
	count func(ctx context.Context) (int, error)
}

func (c *connection[T]) PageInfo() *PageInfo {
	info := &PageInfo{HasNextPage: c.page.HasNextPage, HasPreviousPage: c.page.HasPreviousPage}
	if start := c.page.StartCursor(); start != "" {
		end := c.page.EndCursor()
		info.StartCursor, info.EndCursor = &start, &end
	}
	return info
}

func (c *connection[T]) Nodes() []T { return c.page.Items }

func (c *connection[T]) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// RecordConnection is a page of Records.
type RecordConnection struct{ connection[*store.Record] }

func (c *RecordConnection) Edges() []*RecordEdge {
	edges := make([]*RecordEdge, len(c.page.Items))
	for i, r := range c.page.Items {
		edges[i] = &RecordEdge{Cursor: c.page.Cursors[i], Node: r}
	}
	return edges
}

// ResultConnection is a page of Results.
type ResultConnection struct{ connection[*store.Result] }

func (c *ResultConnection) Edges() []*ResultEdge {
	edges := make([]*ResultEdge, len(c.page.Items))
	for i, r := range c.page.Items {
		edges[i] = &ResultEdge{Cursor: c.page.Cursors[i], Node: r}
	}
	return edges
}
