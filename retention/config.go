// Package retention is the policy agent that prunes old Results, with their
// Records and logs, from the store: it reads the policy (Tekton Results'
// retention ConfigMap keys, plus Annals' own), and runs it once or on a cron
// schedule, in bounded batches, one agent at a time.
//
// Policies apply in order and the first whose selector matches a Result
// governs it; Results no policy matches fall under defaultRetention. A
// selector's lists are OR, its parts AND, an omitted part matches all:
//   - matchNamespaces: the Result's namespace;
//   - matchLabels: labels of the Result's summary run (its PipelineRun, or
//     its lone TaskRun);
//   - matchAnnotations: the Result's annotations;
//   - matchStatuses: the summary status (Succeeded, Failed, Running,
//     Cancelled, Unknown) or the summary run's reason (PipelineRunTimeout...);
//   - Annals' additions: matchDataTypes (the summary run's type),
//     matchPipelines, matchTasks (names).
//
// A Result's age runs from its summary end time, or its creation when the
// run never finished. keepLast keeps the newest N Results of each Pipeline
// (or, with keepLastByLabel, of each value of that label) under a policy
// whatever their age.
package retention

import (
	"fmt"
	"os"
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
	DefaultRetention time.Duration // for Results no policy matches; 0 keeps them
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
		MatchDataTypes   []string            `json:"matchDataTypes"`
		MatchPipelines   []string            `json:"matchPipelines"`
		MatchTasks       []string            `json:"matchTasks"`
	} `json:"selector"`
	Retention       any    `json:"retention"`
	KeepLast        int    `json:"keepLast"`
	KeepLastByLabel string `json:"keepLastByLabel"` // count keepLast per value of this label instead of per Pipeline
}

// DefaultRunAt is the schedule when the file names none: daily at 05:05.
const DefaultRunAt = "5 5 * * *"

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
		for key, values := range sel.MatchAnnotations {
			if len(values) == 0 {
				return nil, fmt.Errorf("%s: selector.matchAnnotations.%s: give at least one value", where, key)
			}
		}
		if p.KeepLastByLabel != "" && p.KeepLast == 0 {
			return nil, fmt.Errorf("%s: keepLastByLabel needs keepLast", where)
		}
		cfg.Policies = append(cfg.Policies, Policy{Name: p.Name, Retention: ret, KeepLast: p.KeepLast, KeepLastByLabel: p.KeepLastByLabel, Selector: store.PruneSelector{
			Namespaces: sel.MatchNamespaces, Labels: sel.MatchLabels, Annotations: sel.MatchAnnotations, Statuses: sel.MatchStatuses,
			DataTypes: sel.MatchDataTypes, Pipelines: sel.MatchPipelines, Tasks: sel.MatchTasks,
		}})
	}
	return cfg, nil
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
