// Package retention is the policy agent that prunes old Results, with their
// Records, annotations and logs, from the store: it reads the policy (Tekton
// Results' retention ConfigMap keys, plus Annals' own), and runs it once or
// on a cron schedule, in bounded batches, one agent at a time.
//
// # Policy file
//
// Either the keys at the top level, or a Kubernetes ConfigMap (as exported by
// kubectl get configmap -o yaml) whose data holds them as strings, policies
// being a YAML document of its own, so that Tekton Results'
// tekton-results-config-results-retention-policy works unchanged:
//   - runAt: a cron schedule (five fields, robfig/cron); default "7 7 * * 0".
//   - defaultRetention: for Results no policy matches; a number of days (30,
//     "30", 1.5) or a duration with a unit ("30d", "24h", "90m"). Default 30
//     days, as in Tekton Results; "0" keeps them forever.
//   - maxRetention: deprecated; when set it wins over defaultRetention, with
//     a warning.
//   - policies: an ordered list of {name, selector, retention, keepLast,
//     keepLastByLabel}; names are unique; retention is required, in the
//     same forms as defaultRetention ("0" keeps what the policy governs).
//
// # Matching
//
// Policies apply in order and the first whose selector matches a Result
// governs it, whatever its age; Results no policy matches fall under
// defaultRetention. A selector's lists are OR, its parts AND, an omitted part
// matches all. Tekton Results' keys mean what they mean to its retention
// agent, which reads the top-level run's own object (the PipelineRun, or the
// lone TaskRun: the Result's summary run), so a ConfigMap moved over from
// Tekton Results selects the same runs:
//   - matchNamespaces: the Result's namespace;
//   - matchLabels (key: [values]): the run's metadata.labels; a run without
//     that label does not match;
//   - matchAnnotations (key: [values]): the run's metadata.annotations (kept
//     in the Result's summary annotations), not the Result's own;
//   - matchStatuses: the reason of the run's Succeeded condition, as written
//     (Succeeded, Completed, Failed, PipelineRunTimeout, TaskRunTimeout,
//     Cancelled, TaskRunCancelled, Running...): Failed does not take in
//     timeouts, nor Cancelled TaskRunCancelled. Tekton Results' summary
//     enum spellings (SUCCESS, FAILURE, ...) are no reason and match nothing
//     there, so they match nothing here either, with a warning.
//
// Annals' additions, which Tekton Results does not read:
//   - matchSummaryStatuses: Annals' summary status of the Result (Succeeded,
//     Failed, Running, Cancelled, Unknown; Failed includes timeouts);
//   - matchResultAnnotations (key: [values]): the Result's own annotations,
//     as set with setAnnotations;
//   - matchDataTypes (the summary run's type, such as
//     tekton.dev/v1.PipelineRun), matchPipelines and matchTasks (the summary
//     run's Pipeline or Task name);
//   - keepLast: N and keepLastByLabel, below.
//
// A Result's age runs from its run's completion (status.completionTime), or,
// for a run not finished, from the run's own metadata.creationTimestamp, as
// in Tekton Results: never from when Annals stored or imported it. A Result
// with no run at all ages from its creation. It is pruned when older than
// its policy's retention, unless keepLast: N keeps it among the newest N
// Results, by the same time, of its Pipeline name (or, with keepLastByLabel:
// KEY, of its value of that label) governed by the policy.
//
// # Pruning
//
// Selection runs in SQL, one policy at a time, batchSize Results at a time;
// each batch is deleted in one transaction, Results whole (their Records,
// annotations and log chunks cascade), so a run that is stopped leaves a
// consistent store and the next run finishes the job. On PostgreSQL a
// session advisory lock, per schema, makes a second agent skip its run; on
// SQLite each batch is an immediate write transaction (see
// store.LockPruning). A dry run takes no lock and deletes nothing.
package retention

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"sigs.k8s.io/yaml"

	"github.com/annals-dev/annals/store"
)

// Config is a validated retention policy.
type Config struct {
	RunAt            string        // cron schedule
	DefaultRetention time.Duration // for Results no policy matches; 0 (written "0") keeps them
	Policies         []Policy
	Warnings         []string // deprecated keys seen while loading
	schedule         cron.Schedule
}

// Policy is one named rule.
type Policy struct {
	Name            string
	Selector        store.PruneSelector
	Retention       time.Duration
	KeepLast        int
	KeepLastByLabel string
}

// file is the policy as written: the keys of Tekton Results' retention
// ConfigMap, either at the top level or under a ConfigMap's data (where
// every value is a string and policies is a YAML document of its own).
type file struct {
	Data             map[string]string `json:"data"`
	RunAt            string            `json:"runAt"`
	DefaultRetention any               `json:"defaultRetention"`
	MaxRetention     any               `json:"maxRetention"`
	Policies         []policyFile      `json:"policies"`
}

type policyFile struct {
	Name     string `json:"name"`
	Selector struct {
		MatchNamespaces  []string            `json:"matchNamespaces"`
		MatchLabels      map[string][]string `json:"matchLabels"`
		MatchAnnotations map[string][]string `json:"matchAnnotations"`
		MatchStatuses    []string            `json:"matchStatuses"`
		// Annals' additions.
		MatchSummaryStatuses   []string            `json:"matchSummaryStatuses"`
		MatchResultAnnotations map[string][]string `json:"matchResultAnnotations"`
		MatchDataTypes         []string            `json:"matchDataTypes"`
		MatchPipelines         []string            `json:"matchPipelines"`
		MatchTasks             []string            `json:"matchTasks"`
	} `json:"selector"`
	Retention       any    `json:"retention"`
	KeepLast        int    `json:"keepLast"`
	KeepLastByLabel string `json:"keepLastByLabel"` // count keepLast per value of this label instead of per Pipeline
}

// DefaultRunAt is the schedule when the file names none, Tekton Results'
// default: Sundays at 07:07.
const DefaultRunAt = "7 7 * * 0"

// DefaultRetention applies to Results no policy matches when the file sets
// neither defaultRetention nor maxRetention, as in Tekton Results.
const DefaultRetention = 30 * 24 * time.Hour

// LoadFile reads and validates a policy file.
func LoadFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads and validates a policy. Errors name the key and the policy.
func Parse(b []byte) (*Config, error) {
	var f file
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		// ConfigMaps carry apiVersion, kind and metadata too.
		var cm struct {
			Data map[string]string `json:"data"`
		}
		if yaml.Unmarshal(b, &cm) != nil || cm.Data == nil {
			return nil, fmt.Errorf("not a retention policy: %w", err)
		}
		f = file{Data: cm.Data}
	}
	if f.Data != nil {
		f.RunAt, f.DefaultRetention, f.MaxRetention = f.Data["runAt"], nilIfEmpty(f.Data["defaultRetention"]), nilIfEmpty(f.Data["maxRetention"])
		if p := f.Data["policies"]; strings.TrimSpace(p) != "" {
			if err := yaml.UnmarshalStrict([]byte(p), &f.Policies); err != nil {
				return nil, fmt.Errorf("data.policies: %w", err)
			}
		}
	}
	cfg := &Config{RunAt: f.RunAt}
	if cfg.RunAt == "" {
		cfg.RunAt = DefaultRunAt
	}
	var err error
	if cfg.schedule, err = cron.ParseStandard(cfg.RunAt); err != nil {
		return nil, fmt.Errorf("runAt %q: %w (write a cron schedule such as %q)", cfg.RunAt, err, DefaultRunAt)
	}
	if cfg.DefaultRetention, err = parseRetention(f.DefaultRetention); err != nil {
		return nil, fmt.Errorf("defaultRetention: %w", err)
	}
	if f.DefaultRetention == nil && f.MaxRetention == nil {
		cfg.DefaultRetention = DefaultRetention
		cfg.Warnings = append(cfg.Warnings, `defaultRetention is not set: Results no policy matches are kept 30 days, as in Tekton Results (write defaultRetention: "0" to keep them)`)
	}
	if f.MaxRetention != nil {
		max, err := parseRetention(f.MaxRetention)
		if err != nil {
			return nil, fmt.Errorf("maxRetention: %w", err)
		}
		cfg.Warnings = append(cfg.Warnings, "maxRetention is deprecated and overrides defaultRetention: set defaultRetention instead")
		cfg.DefaultRetention = max
	}
	seen := map[string]bool{}
	for i, p := range f.Policies {
		where := fmt.Sprintf("policies[%d]", i)
		if p.Name == "" {
			return nil, fmt.Errorf("%s: name is required", where)
		}
		where = fmt.Sprintf("policy %q", p.Name)
		if seen[p.Name] {
			return nil, fmt.Errorf("%s: the name is used twice", where)
		}
		seen[p.Name] = true
		if p.Retention == nil {
			return nil, fmt.Errorf("%s: retention is required (days, or a duration such as 30d or 12h)", where)
		}
		ret, err := parseRetention(p.Retention)
		if err != nil {
			return nil, fmt.Errorf("%s: retention: %w", where, err)
		}
		if p.KeepLast < 0 {
			return nil, fmt.Errorf("%s: keepLast cannot be negative", where)
		}
		sel := p.Selector
		for _, ns := range sel.MatchNamespaces {
			if err := store.CheckNamespace(ns); err != nil {
				return nil, fmt.Errorf("%s: selector.matchNamespaces: %w", where, err)
			}
		}
		for key, values := range sel.MatchLabels {
			if len(values) == 0 {
				return nil, fmt.Errorf("%s: selector.matchLabels.%s: give at least one value", where, key)
			}
		}
		for part, m := range map[string]map[string][]string{"matchAnnotations": sel.MatchAnnotations, "matchResultAnnotations": sel.MatchResultAnnotations} {
			for key, values := range m {
				if len(values) == 0 {
					return nil, fmt.Errorf("%s: selector.%s.%s: give at least one value", where, part, key)
				}
			}
		}
		var reasons []string
		for _, st := range sel.MatchStatuses {
			st = strings.TrimSpace(st)
			if st == "" {
				return nil, fmt.Errorf("%s: selector.matchStatuses: empty status", where)
			}
			if s, ok := summaryEnum[st]; ok {
				cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: selector.matchStatuses: %s is Tekton Results' summary status, not a condition reason: "+
					"it matches no run, as in Tekton Results; write the reasons (such as %s), or matchSummaryStatuses: [%s]", where, st, s.reasons, s.status))
			}
			reasons = append(reasons, st)
		}
		for _, st := range sel.MatchSummaryStatuses {
			if !slices.Contains(summaryStatuses, st) {
				hint := ""
				if s, ok := summaryEnum[st]; ok {
					hint = fmt.Sprintf(" (for Tekton Results' %s write %s)", st, s.status)
				}
				return nil, fmt.Errorf("%s: selector.matchSummaryStatuses: %q is not one of %s%s", where, st, strings.Join(summaryStatuses, ", "), hint)
			}
		}
		if p.KeepLastByLabel != "" && p.KeepLast == 0 {
			return nil, fmt.Errorf("%s: keepLastByLabel needs keepLast", where)
		}
		cfg.Policies = append(cfg.Policies, Policy{Name: p.Name, Retention: ret, KeepLast: p.KeepLast, KeepLastByLabel: p.KeepLastByLabel, Selector: store.PruneSelector{
			Namespaces: sel.MatchNamespaces, Labels: sel.MatchLabels, Annotations: sel.MatchAnnotations, Reasons: reasons,
			SummaryStatuses: sel.MatchSummaryStatuses, ResultAnnotations: sel.MatchResultAnnotations,
			DataTypes: sel.MatchDataTypes, Pipelines: sel.MatchPipelines, Tasks: sel.MatchTasks,
		}})
	}
	return cfg, nil
}

// summaryStatuses are the values of Annals' summary status, which
// matchSummaryStatuses takes.
var summaryStatuses = []string{store.StatusSucceeded, store.StatusFailed, store.StatusRunning, store.StatusCancelled, store.StatusUnknown}

// summaryEnum names, for each spelling of Tekton Results' RecordSummary
// status, the nearest Annals summary status and examples of the reasons
// behind it, to point a policy that names one in the right direction.
var summaryEnum = map[string]struct{ status, reasons string }{
	"SUCCESS":   {store.StatusSucceeded, "Succeeded, Completed"},
	"FAILURE":   {store.StatusFailed, "Failed"},
	"TIMEOUT":   {store.StatusFailed, "PipelineRunTimeout, TaskRunTimeout"},
	"CANCELLED": {store.StatusCancelled, "Cancelled, TaskRunCancelled"},
	"UNKNOWN":   {store.StatusUnknown, "Running"},
}

func nilIfEmpty(s string) any {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return s
}

// parseRetention reads a number of days (30 or "30"), or a duration with a
// unit: "30d", "12h", "90m". Nothing means keep forever (0).
func parseRetention(v any) (time.Duration, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, fmt.Errorf("%v: write a number of days or a duration such as 30d", v)
	}
	if days, err := strconv.ParseFloat(s, 64); err == nil {
		if days < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(d, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q: write a number of days such as 30d", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: write a number of days, or a duration such as 30d, 12h or 90m", s)
	}
	return d, nil
}

// prunePolicies turns the policy into the store's rules as of now; the
// default retention comes last with an empty selector.
func (c *Config) prunePolicies(now time.Time) []store.PrunePolicy {
	var out []store.PrunePolicy
	for _, p := range c.Policies {
		cutoff := now.Add(-p.Retention)
		if p.Retention == 0 {
			cutoff = time.Time{} // keeps everything it matches
		}
		out = append(out, store.PrunePolicy{Name: p.Name, Selector: p.Selector, Cutoff: cutoff, KeepLast: p.KeepLast, KeepLastByLabel: p.KeepLastByLabel})
	}
	cutoff := now.Add(-c.DefaultRetention)
	if c.DefaultRetention == 0 {
		cutoff = time.Time{}
	}
	return append(out, store.PrunePolicy{Name: "default", Cutoff: cutoff})
}
