package store

import (
	"errors"
	"testing"
)

func TestParseNames(t *testing.T) {
	const uid = "0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01"
	tests := []struct {
		name   string
		record bool
		ok     bool
	}{
		{"ci/results/" + uid, false, true},
		{"ci/results/" + uid + "/records/" + uid, true, true},
		{"CI/results/" + uid, false, false},
		{"ci/results/not-a-uuid", false, false},
		{"ci/results/0B5C6A52-1D1E-4C39-9B8E-7A8F3C1D2E01", false, false},
		{"ci/results/" + uid + "/extra", false, false},
		{"ci/result/" + uid, false, false},
		{"/results/" + uid, false, false},
		{"ci/results/" + uid + "/records/x", true, false},
		{"", false, false},
	}
	for _, tt := range tests {
		var err error
		if tt.record {
			_, _, _, err = ParseRecordName(tt.name)
		} else {
			_, _, err = ParseResultName(tt.name)
		}
		if (err == nil) != tt.ok {
			t.Errorf("%q: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%q: error %v does not wrap ErrInvalidArgument", tt.name, err)
		}
	}
}
