package tekton

import (
	"regexp"
	"strings"
)

// A name segment as Tekton Results accepts it.
const segment = `[a-z0-9_-]{1,63}`

var (
	resultNameRE = regexp.MustCompile(`^(` + segment + `)/results/(` + segment + `)$`)
	recordNameRE = regexp.MustCompile(`^(` + segment + `)/results/(` + segment + `)/records/(` + segment + `)$`)
	segmentRE    = regexp.MustCompile(`^` + segment + `$`)
)

// parseResultName splits "<parent>/results/<id>".
func parseResultName(name string) (parent, id string, err error) {
	m := resultNameRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", invalidf("name must match %s", resultNameRE.String())
	}
	return m[1], m[2], nil
}

// parseRecordName splits "<parent>/results/<result id>/records/<id>".
func parseRecordName(name string) (parent, result, id string, err error) {
	m := recordNameRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", "", invalidf("name must match %s", recordNameRE.String())
	}
	return m[1], m[2], m[3], nil
}

// parseRecordParent splits the parent of Records, "<parent>/results/<id>",
// where either part may be the wildcard "-".
func parseRecordParent(parent string) (namespace, result string, err error) {
	ns, rest, ok := strings.Cut(parent, "/results/")
	if !ok || !segmentRE.MatchString(ns) || !segmentRE.MatchString(rest) {
		return "", "", invalidf("parent must match %s/results/%s (either part may be -)", segment, segment)
	}
	return ns, rest, nil
}
