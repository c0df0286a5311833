package graph

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/annals-dev/annals/store"
)

// subscriptionBuffer is how many messages may wait for a subscriber's
// connection; one that falls further behind is disconnected.
const subscriptionBuffer = 256

// noRecord is a key no Record has, for checking a subscription's filter.
var noRecord = store.Key{Namespace: "-", UID: "00000000-0000-0000-0000-000000000000"}

// changeBatchWindow gathers changes arriving together into one query.
const changeBatchWindow = 20 * time.Millisecond

// subscriptionQueryContext bounds one query of a subscription, which has no
// request deadline of its own.
func (r *Resolver) subscriptionQueryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := r.SubscriptionQueryTimeout
	if d <= 0 {
		d = 20 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

// streamRecords sends the changed Records that the subscription's listing
// would show, re-checking access per namespace (decisions are cached), so
// that a revoked right stops the flow.
func (r *Resolver) streamRecords(ctx context.Context, o store.ListOptions, changes <-chan store.Change, out chan<- *store.Record) {
	defer close(out)
	for {
		keys, ok := gather(changes, o)
		if !ok {
			return
		}
		if len(keys) == 0 {
			continue
		}
		qctx, cancel := r.subscriptionQueryContext(ctx)
		recs, err := r.Store.MatchingRecords(qctx, o, keys)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				slog.WarnContext(ctx, "subscription ended: reading changed records failed", "error", err,
					"statement_timeout", store.IsStatementTimeout(err), "deadline", errors.Is(err, context.DeadlineExceeded))
			}
			return
		}
		for _, rec := range recs {
			if r.allow(ctx, rec.Namespace, resRecords, verbList) != nil {
				continue
			}
			select {
			case out <- rec:
			default:
				slog.InfoContext(ctx, "subscriber too slow: disconnected")
				return
			}
		}
	}
}

// gather waits for a change, then collects those that follow within the
// batch window, keeping the Records in o's namespaces. false: the feed ended.
func gather(changes <-chan store.Change, o store.ListOptions) ([]store.Key, bool) {
	c, ok := <-changes
	if !ok {
		return nil, false
	}
	seen := map[store.Key]bool{}
	var keys []store.Key
	add := func(c store.Change) {
		if !inScope(o, c.Namespace) || seen[c.Key()] {
			return
		}
		seen[c.Key()] = true
		keys = append(keys, c.Key())
	}
	add(c)
	timer := time.NewTimer(changeBatchWindow)
	defer timer.Stop()
	for len(keys) < store.MaxPageSize {
		select {
		case c, ok := <-changes:
			if !ok {
				return keys, true // send these; the next call ends the stream
			}
			add(c)
		case <-timer.C:
			return keys, true
		}
	}
	return keys, true
}

func inScope(o store.ListOptions, namespace string) bool {
	if o.Parent != "" && o.Parent != "-" {
		return namespace == o.Parent
	}
	if o.Namespaces == nil {
		return true
	}
	for _, ns := range o.Namespaces {
		if ns == namespace {
			return true
		}
	}
	return false
}

// maxLinesPerMessage bounds one logLines message.
const maxLinesPerMessage = 1000

// streamLog sends the log's complete lines stored so far, then new ones as
// the log is stored again. A log rewritten shorter starts over.
func (r *Resolver) streamLog(ctx context.Context, rec *store.Record, changes <-chan store.Change, out chan<- []string) {
	defer close(out)
	var offset int64
	var partial []byte
	send := func() bool {
		for {
			qctx, cancel := r.subscriptionQueryContext(ctx)
			chunk, err := r.Store.ReadLogRange(qctx, rec, offset, 256<<10)
			cancel()
			if err != nil || len(chunk) == 0 {
				return err == nil
			}
			offset += int64(len(chunk))
			data := append(partial, chunk...)
			cut := bytes.LastIndexByte(data, '\n')
			if cut < 0 {
				partial = data
				continue
			}
			partial = append([]byte(nil), data[cut+1:]...)
			lines := bytes.Split(data[:cut], []byte{'\n'})
			for start := 0; start < len(lines); start += maxLinesPerMessage {
				batch := make([]string, 0, min(maxLinesPerMessage, len(lines)-start))
				for _, l := range lines[start:min(start+maxLinesPerMessage, len(lines))] {
					batch = append(batch, string(l))
				}
				select {
				case out <- batch:
				default:
					return false // too slow: disconnect
				}
			}
		}
	}
	if !send() {
		return
	}
	for c := range changes {
		if c.Key() != rec.Key() {
			continue
		}
		if r.allow(ctx, rec.Namespace, resLogs, verbGet) != nil {
			return
		}
		qctx, cancel := r.subscriptionQueryContext(ctx)
		size, err := r.Store.LogSize(qctx, rec.Key())
		cancel()
		if err == nil && size < offset {
			offset, partial = 0, nil // replaced by a shorter log
		}
		if !send() {
			return
		}
	}
}
