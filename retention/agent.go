package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/annals-dev/annals/store"
)

// Agent applies a Config to a store.
type Agent struct {
	Store     *store.Store
	Config    *Config
	Log       *slog.Logger
	BatchSize int      // Results deleted per transaction
	DryRun    bool     // count what would go, delete nothing
	Metrics   *Metrics // nil: no metrics
	// Reload, when set, rereads the policy before each scheduled run (a
	// mounted ConfigMap changes under a running agent); a policy that no
	// longer loads is logged and the last good one kept.
	Reload func() (*Config, error)

	now        func() time.Time // tests set the clock
	afterBatch func()           // tests interrupt a run between batches
}

// Count is what a run removed (or, dry, would remove) under one policy in
// one namespace.
type Count struct {
	Policy, Namespace string
	Results, Records  int
}

// Report is the outcome of one run.
type Report struct {
	Counts   []Count
	LogBytes int64 // bytes of logs deleted (not counted by dry runs)
	Duration time.Duration
	Skipped  bool // another agent held the lock
}

// ErrLocked is returned by RunOnce when another agent is pruning.
var ErrLocked = errors.New("another retention agent is pruning now")

// RunOnce applies every policy once. Results go in batches of BatchSize,
// each in its own transaction, so the API keeps answering during a large
// prune and a run that is stopped half-way leaves whole Results behind and
// finishes on the next run.
func (a *Agent) RunOnce(ctx context.Context) (*Report, error) {
	start := time.Now()
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	if !a.DryRun { // a dry run only reads, and may preview while a prune runs
		ok, release, err := a.Store.LockPruning(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &Report{Skipped: true}, ErrLocked
		}
		defer release()
	}
	policies := a.Config.prunePolicies(now())
	rep := &Report{}
	for i, p := range policies {
		if a.DryRun {
			counts, err := a.Store.PruneCounts(ctx, policies, i)
			if err != nil {
				return rep, fmt.Errorf("policy %q: %w", p.Name, err)
			}
			for ns, c := range counts {
				rep.Counts = append(rep.Counts, Count{Policy: p.Name, Namespace: ns, Results: c[0], Records: c[1]})
			}
			continue
		}
		perNamespace := map[string]*Count{}
		for {
			batch, err := a.Store.PruneCandidates(ctx, policies, i, max(a.BatchSize, 1))
			if err != nil {
				return rep, fmt.Errorf("policy %q: %w", p.Name, err)
			}
			if len(batch) == 0 {
				break
			}
			names := make([]string, len(batch))
			for j, t := range batch {
				names[j] = t.Name
			}
			_, logBytes, err := a.Store.DeleteResults(ctx, names)
			if err != nil {
				return rep, fmt.Errorf("policy %q: %w", p.Name, err)
			}
			if a.afterBatch != nil {
				a.afterBatch()
			}
			rep.LogBytes += logBytes
			for _, t := range batch {
				c := perNamespace[t.Namespace]
				if c == nil {
					c = &Count{Policy: p.Name, Namespace: t.Namespace}
					perNamespace[t.Namespace] = c
				}
				c.Results++
				c.Records += t.Records
			}
		}
		for _, c := range perNamespace {
			rep.Counts = append(rep.Counts, *c)
		}
	}
	sort.Slice(rep.Counts, func(i, j int) bool {
		if rep.Counts[i].Policy != rep.Counts[j].Policy {
			return rep.Counts[i].Policy < rep.Counts[j].Policy
		}
		return rep.Counts[i].Namespace < rep.Counts[j].Namespace
	})
	if !a.DryRun {
		// Log files (with a log directory) outlive their deleted Records
		// until swept; an hour's margin keeps writes in progress safe.
		_, size, err := a.Store.SweepLogFiles(ctx, time.Hour)
		if err != nil {
			return rep, fmt.Errorf("sweeping log files: %w", err)
		}
		rep.LogBytes += size
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// Run applies the policy on its schedule until ctx ends. A failed run is
// logged and tried again at the next scheduled time. With Reload set, the
// policy is reread before each run; a changed runAt applies from the wait
// after that run.
func (a *Agent) Run(ctx context.Context) error {
	for {
		next := a.Config.schedule.Next(time.Now())
		a.Log.Info("next retention run", "at", next)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		a.reload()
		a.runAndLog(ctx)
	}
}

// reload rereads the policy when Reload is set.
func (a *Agent) reload() {
	if a.Reload == nil {
		return
	}
	cfg, err := a.Reload()
	if err != nil {
		a.Log.Error("retention policy does not load; keeping the last good one", "error", err)
		return
	}
	for _, w := range cfg.Warnings {
		a.Log.Warn(w)
	}
	a.Config = cfg
}

// runAndLog runs once and writes the one log line of the run.
func (a *Agent) runAndLog(ctx context.Context) (*Report, error) {
	rep, err := a.RunOnce(ctx)
	if errors.Is(err, ErrLocked) {
		a.Metrics.observe(rep, "skipped", a.DryRun)
		a.Log.Info("retention run skipped: another agent is pruning")
		return rep, err
	}
	results, records := 0, 0
	if rep != nil {
		for _, c := range rep.Counts {
			results, records = results+c.Results, records+c.Records
		}
	}
	attrs := []any{"dry_run", a.DryRun, "results", results, "records", records}
	if rep != nil {
		attrs = append(attrs, "log_bytes", rep.LogBytes)
	}
	if rep != nil {
		attrs = append(attrs, "duration_ms", rep.Duration.Milliseconds())
	}
	if err != nil {
		a.Metrics.observe(rep, "error", a.DryRun)
		a.Log.Error("retention run failed", append(attrs, "error", err)...)
	} else {
		a.Metrics.observe(rep, "ok", a.DryRun)
		a.Log.Info("retention run", attrs...)
	}
	return rep, err
}

// RunOnceAndLog is RunOnce followed by the run's log line.
func (a *Agent) RunOnceAndLog(ctx context.Context) (*Report, error) { return a.runAndLog(ctx) }
