package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	checkout := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"},
		{Key: "vcs.time", Value: "2026-03-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name, stamped string
		bi            *debug.BuildInfo
		want          []string
	}{
		{"checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: checkout},
			[]string{"annals dev (revision 0123abcd, modified, 2026-03-01T10:00:00Z) go"}},
		{"go install of a tag", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, []string{"annals v1.4.0 go"}},
		{"stamped wins", "v2.0.0-rc1", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: checkout}, []string{"annals v2.0.0-rc1 (revision 0123abcd"}},
		{"nothing known", "", nil, []string{"annals dev go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.stamped, tt.bi, tt.bi != nil).String()
			for _, want := range tt.want {
				if !strings.HasPrefix(got, want) {
					t.Errorf("got %q, want it to start with %q", got, want)
				}
			}
		})
	}
}
