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

// subscribeRecords checks a Record subscription's arguments and the
// caller's scope, and subscribes to the store's changes.
func (r *Resolver) subscribeRecords(ctx context.Context, parent string, where *RecordWhere, filter *string) (store.ListOptions, <-chan store.Change, error) {
	o := store.ListOptions{Parent: parent, RecordWhere: recordWhere(where), Filter: deref(filter)}
	var err error
	if o.Namespaces, err = r.listScope(ctx, parent, resRecords); err != nil {
		return o, nil, err
	}
	// A bad filter fails the subscribe, not the stream.
	qctx, cancel := r.subscriptionQueryContext(ctx)
	defer cancel()
	if _, err := r.Store.MatchingRecords(qctx, o, []store.Key{noRecord}); err != nil {
		return o, nil, err
	}
	changes, err := r.Store.Subscribe(ctx)
	return o, changes, err
}

// streamRecords sends the changed Records that the subscription's listing
// would show, re-checking access per namespace (decisions are cached), so
// that a revoked right stops the flow.
func (r *Resolver) streamRecords(ctx context.Context, o store.ListOptions, changes <-chan store.Change, out chan<- *store.Record) {
	defer close(out)
	r.streamEvents(ctx, o, changes, func(ev *RecordEvent) bool {
		if ev.Record == nil {
			return true // recordChanged says nothing of deletes
		}
		select {
		case out <- ev.Record:
			return true
		default:
			return false
		}
	})
}

// streamRecordEvents is streamRecords with deletes, as RecordEvents.
func (r *Resolver) streamRecordEvents(ctx context.Context, o store.ListOptions, changes <-chan store.Change, out chan<- *RecordEvent) {
	defer close(out)
	r.streamEvents(ctx, o, changes, func(ev *RecordEvent) bool {
		select {
		case out <- ev:
			return true
		default:
			return false
		}
	})
}

// streamEvents turns batches of changes into events until the feed ends,
// a query fails or send reports a subscriber too slow (false). A written
// Record is sent if the listing with o shows it; a deleted one if what is
// left of it (namespace, name, data type) matches o.
func (r *Resolver) streamEvents(ctx context.Context, o store.ListOptions, changes <-chan store.Change, send func(*RecordEvent) bool) {
	for {
		batch, ok := gather(changes, o)
		if !ok {
			return
		}
		var written []store.Key
		for _, c := range batch {
			if !c.Deleted {
				written = append(written, c.Key())
			}
		}
		matching := map[store.Key]*store.Record{}
		if len(written) > 0 {
			qctx, cancel := r.subscriptionQueryContext(ctx)
			recs, err := r.Store.MatchingRecords(qctx, o, written)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					slog.WarnContext(ctx, "subscription ended: reading changed records failed", "error", err,
						"statement_timeout", store.IsStatementTimeout(err), "deadline", errors.Is(err, context.DeadlineExceeded))
				}
				return
			}
			for _, rec := range recs {
				matching[rec.Key()] = rec
			}
		}
		for _, c := range batch {
			var ev *RecordEvent
			if rec := matching[c.Key()]; rec != nil && !c.Deleted {
				ev = &RecordEvent{Kind: RecordEventKindUpdated, Name: rec.Name, DataType: rec.DataType, Record: rec}
				if rec.Version == 1 {
					ev.Kind = RecordEventKindCreated
				}
			} else if store.DeletedMatches(o, c) {
				ev = &RecordEvent{Kind: RecordEventKindDeleted, Name: c.Name, DataType: c.DataType}
			}
			if ev == nil || r.allow(ctx, c.Namespace, resRecords, verbList) != nil {
				continue
			}
			if !send(ev) {
				slog.InfoContext(ctx, "subscriber too slow: disconnected")
				return
			}
		}
	}
}

// gather waits for a change, then collects those that follow within the
// batch window, keeping the Records in o's namespaces, each once with its
// last change. false: the feed ended.
func gather(changes <-chan store.Change, o store.ListOptions) ([]store.Change, bool) {
	c, ok := <-changes
	if !ok {
		return nil, false
	}
	index := map[store.Key]int{}
	var batch []store.Change
	add := func(c store.Change) {
		if !inScope(o, c.Namespace) {
			return
		}
		if i, seen := index[c.Key()]; seen {
			batch[i] = c // a write then a delete is a delete, and the reverse a write
			return
		}
		index[c.Key()] = len(batch)
		batch = append(batch, c)
	}
	add(c)
	timer := time.NewTimer(changeBatchWindow)
	defer timer.Stop()
	for len(batch) < store.MaxPageSize {
		select {
		case c, ok := <-changes:
			if !ok {
				return batch, true // send these; the next call ends the stream
			}
			add(c)
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
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
