package store

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/annals-dev/annals/store/filter"
)

// ResultName is the name of the Result uid in namespace.
func ResultName(namespace, uid string) string { return namespace + "/results/" + uid }

// RecordName is the name of the Record uid under a Result.
func RecordName(namespace, resultUID, uid string) string {
	return ResultName(namespace, resultUID) + "/records/" + uid
}

// ParseResultName splits "<namespace>/results/<uid>".
func ParseResultName(name string) (namespace, uid string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[1] != "results" {
		return "", "", fmt.Errorf("%w: result name %q: want <namespace>/results/<uid>", ErrInvalidArgument, name)
	}
	if err := checkNamespace(parts[0]); err != nil {
		return "", "", err
	}
	if err := checkUID(parts[2]); err != nil {
		return "", "", err
	}
	return parts[0], parts[2], nil
}

// ParseRecordName splits "<namespace>/results/<result uid>/records/<uid>".
func ParseRecordName(name string) (namespace, resultUID, uid string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 5 || parts[1] != "results" || parts[3] != "records" {
		return "", "", "", fmt.Errorf("%w: record name %q: want <namespace>/results/<uid>/records/<uid>", ErrInvalidArgument, name)
	}
	if err := checkNamespace(parts[0]); err != nil {
		return "", "", "", err
	}
	for _, uid := range []string{parts[2], parts[4]} {
		if err := checkUID(uid); err != nil {
			return "", "", "", err
		}
	}
	return parts[0], parts[2], parts[4], nil
}

// CheckNamespace validates a namespace as Kubernetes does (a DNS-1123 label).
func CheckNamespace(ns string) error { return checkNamespace(ns) }

func checkNamespace(ns string) error {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrInvalidArgument, ns, strings.Join(msgs, "; "))
	}
	return nil
}

func checkUID(uid string) error {
	if _, err := uuid.Parse(uid); err != nil || len(uid) != 36 || strings.ToLower(uid) != uid {
		return fmt.Errorf("%w: uid %q is not a lower-case UUID such as 3f1c2a9e-8a57-4d6b-9a47-1f0c8d3b2e61", ErrInvalidArgument, uid)
	}
	return nil
}

// newUID returns a fresh lower-case UUID.
func newUID() string { return uuid.NewString() }

// keysSQL is the condition "(nsCol, uidCol) is one of keys", with ?
// placeholders. The IN list on each column lets the planner use the
// (namespace, uid...) indexes; the pairs then keep exactly the keys asked
// for, never a uid of one namespace paired with another namespace.
func keysSQL(nsCol, uidCol string, keys []Key) (string, []any) {
	if len(keys) == 1 {
		return nsCol + " = ? AND " + uidCol + " = ?", []any{keys[0].Namespace, keys[0].UID}
	}
	var namespaces, uids, pairs []any
	seenNS, seenUID := map[string]bool{}, map[string]bool{}
	values := make([]string, len(keys))
	for i, k := range keys {
		if !seenNS[k.Namespace] {
			seenNS[k.Namespace] = true
			namespaces = append(namespaces, k.Namespace)
		}
		if !seenUID[k.UID] {
			seenUID[k.UID] = true
			uids = append(uids, k.UID)
		}
		values[i] = "(?, ?)"
		pairs = append(pairs, k.Namespace, k.UID)
	}
	sql := nsCol + " IN (" + filter.Placeholders(len(namespaces)) + ") AND " + uidCol + " IN (" + filter.Placeholders(len(uids)) +
		") AND (" + nsCol + ", " + uidCol + ") IN (VALUES " + strings.Join(values, ", ") + ")"
	return sql, append(append(namespaces, uids...), pairs...)
}

// resultKeys parses Result names into keys.
func resultKeys(names []string) ([]Key, error) {
	keys := make([]Key, len(names))
	for i, name := range names {
		ns, uid, err := ParseResultName(name)
		if err != nil {
			return nil, err
		}
		keys[i] = Key{ns, uid}
	}
	return keys, nil
}
