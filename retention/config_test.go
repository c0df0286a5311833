package retention

import (
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
	if p := cm.Policies[0]; p.Name != "prod-failures" || p.Retention != 60*day || p.Selector.Statuses[1] != "PipelineRunTimeout" {
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
