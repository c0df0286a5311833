package watcher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/annals-dev/annals/store"
)

// ImportReport tells what an import stored and what it skipped.
type ImportReport struct {
	PipelineRuns, TaskRuns int
	Results                map[string]bool
	Skipped                []string // one line per object not stored, saying why
	// Repaired names the objects stored with invalid UTF-8 (or NUL
	// characters) replaced by U+FFFD (or removed), one line each.
	Repaired []string
}

// importBatch is how many runs one store transaction writes.
const importBatch = 500

// Import stores the TaskRuns and PipelineRuns found in kubectl output (JSON
// or YAML; single objects, Lists, or several YAML documents), grouped as the
// watcher groups them. Runs are keyed by uid, so importing again stores
// nothing twice. Objects that are not runs, or are broken, are skipped and
// reported.
func Import(ctx context.Context, s *store.Store, in io.Reader) (*ImportReport, error) {
	objects, skipped, err := readObjects(in)
	if err != nil {
		return nil, err
	}
	rep := &ImportReport{Results: map[string]bool{}, Skipped: skipped}
	var runs []*Run
	var datas [][]byte
	prUIDs := map[string]string{}
	for i, obj := range objects {
		r, err := ParseRun(obj)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("object %d (%s): %v", i+1, describe(obj), err))
			continue
		}
		if r.Kind == "PipelineRun" {
			prUIDs[r.Metadata.Namespace+"/"+r.Metadata.Name] = r.Metadata.UID
		}
		// One broken string must not cost the object, nor the import: store
		// it with U+FFFD in place of what cannot be stored, and say so.
		if fixed, repaired, err := store.RepairJSON(obj); err == nil && repaired {
			obj = fixed
			rep.Repaired = append(rep.Repaired, fmt.Sprintf("%s %s/%s: invalid UTF-8 or NUL characters replaced with U+FFFD or removed",
				r.Kind, r.Metadata.Namespace, r.Metadata.Name))
		}
		runs, datas = append(runs, r), append(datas, obj)
	}
	lookup := func(ns, name string) (string, bool) {
		uid, ok := prUIDs[ns+"/"+name]
		return uid, ok
	}
	type pending struct {
		w    store.RecordWrite
		name string // Kind namespace/name, for the report
		kind string
	}
	var batch []pending
	stored := func(p pending) {
		rep.Results[p.w.ResultName] = true
		if p.kind == "PipelineRun" {
			rep.PipelineRuns++
		} else {
			rep.TaskRuns++
		}
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ws := make([]store.RecordWrite, len(batch))
		for i, p := range batch {
			ws[i] = p.w
		}
		if err := s.UpsertRecords(ctx, ws); err == nil {
			for _, p := range batch {
				stored(p)
			}
		} else {
			// Find the run the store refuses, write by write, so that the
			// rest goes on; any other failure ends the import.
			for _, p := range batch {
				err := s.UpsertRecords(ctx, []store.RecordWrite{p.w})
				switch {
				case err == nil:
					stored(p)
				case errors.Is(err, store.ErrInvalidArgument):
					rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", p.name, err))
				default:
					return err
				}
			}
		}
		batch = batch[:0]
		return nil
	}
	for i, r := range runs {
		w, err := Group(r, datas[i], lookup)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s %s/%s: %v", r.Kind, r.Metadata.Namespace, r.Metadata.Name, err))
			continue
		}
		batch = append(batch, pending{w, fmt.Sprintf("%s %s/%s", r.Kind, r.Metadata.Namespace, r.Metadata.Name), r.Kind})
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	return rep, flush()
}

// readObjects splits kubectl output into single objects as JSON.
func readObjects(in io.Reader) (objects [][]byte, skipped []string, err error) {
	raw, err := io.ReadAll(in)
	if err != nil {
		return nil, nil, err
	}
	trimmed := bytes.TrimSpace(raw)
	var docs [][]byte
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for dec.More() {
			var doc json.RawMessage
			if err := dec.Decode(&doc); err != nil {
				return nil, nil, fmt.Errorf("reading JSON: %w", err)
			}
			docs = append(docs, doc)
		}
	} else {
		for i, doc := range splitYAML(raw) {
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("YAML document %d: %v", i+1, err))
				continue
			}
			if string(bytes.TrimSpace(j)) != "null" {
				docs = append(docs, j)
			}
		}
	}
	for _, doc := range docs {
		objects = append(objects, flatten(doc)...)
	}
	return objects, skipped, nil
}

// flatten expands Lists (kind List, TaskRunList...) and JSON arrays.
func flatten(doc []byte) [][]byte {
	doc = bytes.TrimSpace(doc)
	if len(doc) > 0 && doc[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(doc, &items) == nil {
			var out [][]byte
			for _, it := range items {
				out = append(out, flatten(it)...)
			}
			return out
		}
	}
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if json.Unmarshal(doc, &list) == nil && strings.HasSuffix(list.Kind, "List") {
		var out [][]byte
		for _, it := range list.Items {
			out = append(out, flatten(it)...)
		}
		return out
	}
	return [][]byte{doc}
}

func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " ") == "---" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, cur.Bytes())
}

func describe(obj []byte) string {
	var m struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if json.Unmarshal(obj, &m) != nil || m.Kind == "" {
		return "unreadable"
	}
	return m.Kind + " " + m.Metadata.Name
}
