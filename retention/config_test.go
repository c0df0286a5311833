package retention

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestLoadFiles(t *testing.T) {
	cm, err := LoadFile("testdata/results-retention-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cm.RunAt != "5 5 * * 0" || cm.DefaultRetention != 30*day || len(cm.Warnings) != 1 || len(cm.Policies) != 2 {
		t.Errorf("configmap: %+v", cm)
	}
	if p := cm.Policies[0]; p.Name != "prod-failures" || p.Retention != 60*day || p.Selector.Reasons[1] != "PipelineRunTimeout" {
		t.Errorf("first policy: %+v", p)
	}
	if p := cm.Policies[1]; p.Retention != day || len(p.Selector.Labels["app"]) != 2 {
		t.Errorf("second policy: %+v", p)
	}
	own, err := LoadFile("testdata/annals-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if own.DefaultRetention != 30*day || own.Policies[1].KeepLast != 5 || own.Policies[1].Selector.Pipelines[0] != "nightly-build" {
		t.Errorf("annals policy: %+v", own)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct{ yaml, mention string }{
		{`runAt: "every day"`, "runAt"},
		{`defaultRetention: soon`, "defaultRetention"},
		{`defaultRetention: -3`, "negative"},
		{"policies:\n- selector: {}\n  retention: 1d", "policies[0]: name is required"},
		{"policies:\n- name: a\n  retention: 1d\n- name: a\n  retention: 2d", `policy "a": the name is used twice`},
		{"policies:\n- name: a", `policy "a": retention is required`},
		{"policies:\n- name: a\n  retention: 3 weeks", `policy "a": retention`},
		{"policies:\n- name: a\n  retention: 1d\n  keepLast: -1", "keepLast"},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchNamespaces: [Bad_NS]}", "matchNamespaces"},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchLabels: {app: []}}", "matchLabels.app"},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchColour: [red]}", "matchColour"},
		{"data:\n  policies: \"- name: [\"", "data.policies"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%q: %v; want an error mentioning %q", tt.yaml, err, tt.mention)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[any]time.Duration{"30": 30 * day, 7.0: 7 * day, "30d": 30 * day, "12h": 12 * time.Hour, "1.5d": 36 * time.Hour, nil: 0} {
		if got, err := parseRetention(in); err != nil || got != want {
			t.Errorf("%v: %v %v, want %v", in, got, err, want)
		}
	}
}

func TestTektonDocsConfigMap(t *testing.T) {
	cfg, err := LoadFile("testdata/tekton-results-docs-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunAt != "*/1 * * * *" || cfg.DefaultRetention != 30*time.Minute || len(cfg.Warnings) != 0 || len(cfg.Policies) != 2 {
		t.Fatalf("%+v", cfg)
	}
	p := cfg.Policies[0]
	if p.Name != "prod-failed-retention" || p.Retention != 10*time.Minute || len(p.Selector.Namespaces) != 2 ||
		!slices.Equal(p.Selector.Labels["env"], []string{"prod"}) || !slices.Equal(p.Selector.Reasons, []string{"Failed"}) {
		t.Errorf("first policy: %+v", p)
	}
	if p := cfg.Policies[1]; p.Retention != 3*time.Minute || p.Selector.Reasons != nil {
		t.Errorf("second policy: %+v", p)
	}
}

func TestDefaultsAndDeprecations(t *testing.T) {
	tests := []struct {
		yaml     string
		runAt    string
		def      time.Duration
		warnings int
	}{
		{``, DefaultRunAt, 30 * day, 1},                                       // Tekton Results' defaults, said aloud
		{`defaultRetention: "0"`, DefaultRunAt, 0, 0},                         // keep what no policy matches
		{`defaultRetention: 14`, DefaultRunAt, 14 * day, 0},                   // a number is days
		{"defaultRetention: 14\nmaxRetention: 30", DefaultRunAt, 30 * day, 1}, // maxRetention wins, with a warning
		{"maxRetention: 7", DefaultRunAt, 7 * day, 1},
		{"runAt: \"0 3 * * *\"\ndefaultRetention: 24h", "0 3 * * *", 24 * time.Hour, 0},
		{"data:\n  maxRetention: \"5\"\n  defaultRetention: \"2\"", DefaultRunAt, 5 * day, 1},
	}
	for _, tt := range tests {
		cfg, err := Parse([]byte(tt.yaml))
		if err != nil {
			t.Errorf("%q: %v", tt.yaml, err)
			continue
		}
		if cfg.RunAt != tt.runAt || cfg.DefaultRetention != tt.def || len(cfg.Warnings) != tt.warnings {
			t.Errorf("%q: runAt %q, default %v, warnings %q", tt.yaml, cfg.RunAt, cfg.DefaultRetention, cfg.Warnings)
		}
	}
}

// matchStatuses is the reason only, as written; Tekton Results' summary
// enum spellings there match no run (as upstream) and say so; summary
// statuses go in matchSummaryStatuses, in Annals' spelling.
func TestStatusSpellings(t *testing.T) {
	cfg, err := Parse([]byte("policies:\n- name: a\n  retention: 1d\n  selector: {matchStatuses: [FAILURE, PipelineRunTimeout, Cancelled], matchSummaryStatuses: [Failed]}"))
	if err != nil {
		t.Fatal(err)
	}
	sel := cfg.Policies[0].Selector
	if want := []string{"FAILURE", "PipelineRunTimeout", "Cancelled"}; !slices.Equal(sel.Reasons, want) {
		t.Errorf("reasons %v, want %v", sel.Reasons, want)
	}
	if !slices.Equal(sel.SummaryStatuses, []string{"Failed"}) {
		t.Errorf("summary statuses %v", sel.SummaryStatuses)
	}
	if len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings[1], "FAILURE is Tekton Results' summary status, not a condition reason") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

func TestMoreParseErrors(t *testing.T) {
	tests := []struct{ yaml, mention string }{
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchStatuses: [\"\"]}", `policy "a": selector.matchStatuses`},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchAnnotations: {release: []}}", `policy "a": selector.matchAnnotations.release`},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchResultAnnotations: {release: []}}", `policy "a": selector.matchResultAnnotations.release`},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchSummaryStatuses: [FAILURE]}", `matchSummaryStatuses: "FAILURE" is not one of Succeeded, Failed, Running, Cancelled, Unknown (for Tekton Results' FAILURE write Failed)`},
		{"policies:\n- name: a\n  retention: 1d\n  selector: {matchSummaryStatuses: [Done]}", `matchSummaryStatuses: "Done"`},
		{"policies:\n- name: a\n  retention: 1d\n  keepLastByLabel: app", `policy "a": keepLastByLabel needs keepLast`},
		{"policies:\n- name: a\n  retention: -2d", `policy "a": retention`},
		{"maxRetention: forever", "maxRetention"},
		{"data:\n  runAt: \"61 * * * *\"", "runAt"},
		{"runAt: \"7 7 * * 7 7\"", "runAt"},
		{"defaultRetention: [1]", "defaultRetention"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%q: %v; want an error mentioning %q", tt.yaml, err, tt.mention)
		}
	}
}
