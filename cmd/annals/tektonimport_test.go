package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// tektonResultsSchema is Tekton Results' own tables as its API server
// creates them (gorm's model of results and records on PostgreSQL).
const tektonResultsSchema = `
CREATE TABLE results (
  parent varchar(64), id varchar(64), name varchar(64), annotations jsonb,
  created_time timestamptz DEFAULT current_timestamp, updated_time timestamptz DEFAULT current_timestamp,
  recordsummary_record varchar(256), recordsummary_type varchar(768),
  recordsummary_start_time timestamptz, recordsummary_end_time timestamptz,
  recordsummary_status integer, recordsummary_annotations jsonb, etag varchar(128),
  PRIMARY KEY (parent, id));
CREATE UNIQUE INDEX results_by_name ON results (parent, name);
CREATE TABLE records (
  parent varchar(64), result_id varchar(64), id varchar(64), result_name varchar(64), name varchar(64),
  type varchar(768), data jsonb,
  created_time timestamptz DEFAULT current_timestamp, updated_time timestamptz DEFAULT current_timestamp, etag varchar(128),
  PRIMARY KEY (parent, result_id, id),
  FOREIGN KEY (parent, result_id) REFERENCES results (parent, id) ON UPDATE CASCADE ON DELETE CASCADE);
CREATE INDEX records_by_name ON records (parent, result_name, name);
`

// tektonResultsFill generates $1 PipelineRuns, each a Result holding its
// PipelineRun, 5 TaskRuns and 4 Logs (10 Records), as upstream's watcher
// lays them out: Result name and PipelineRun record name are the run's uid,
// a separate server uid each, summary naming the PipelineRun, statuses
// among success, failure and timeout. Result 1 has no summary (stored by an
// old upstream), Result 2 a Record whose name is no UUID.
const tektonResultsFill = `
CREATE TEMP TABLE runs AS
SELECT i, CASE WHEN i % 2 = 0 THEN 'ci' ELSE 'prod' END AS ns,
  md5('pr' || i)::uuid::text AS pr, md5('res' || i)::uuid::text AS res,
  timestamptz '2026-03-01 00:00:00+00' + i * interval '1 minute' + (i % 7) * interval '123457 microseconds' AS created,
  CASE i % 5 WHEN 0 THEN 'Failed' WHEN 1 THEN 'PipelineRunTimeout' ELSE 'Succeeded' END AS reason
FROM generate_series(1, $1) AS i;

INSERT INTO results
SELECT ns, res, pr,
  CASE WHEN i % 50 = 0 THEN NULL ELSE jsonb_build_object('object.metadata.name', 'build-' || i, 'team', CASE WHEN i % 3 = 0 THEN 'web' ELSE 'api' END) END,
  created, created + interval '21 minutes',
  CASE WHEN i = 1 THEN '' ELSE ns || '/results/' || pr || '/records/' || pr END, 'tekton.dev/v1.PipelineRun',
  created + interval '1 second', created + interval '20 minutes',
  CASE reason WHEN 'Succeeded' THEN 1 WHEN 'Failed' THEN 2 ELSE 3 END, NULL, res || '-1'
FROM runs;

INSERT INTO records
SELECT ns, res, md5('prrec' || i)::uuid::text, pr, pr, 'tekton.dev/v1.PipelineRun',
  jsonb_build_object('apiVersion', 'tekton.dev/v1', 'kind', 'PipelineRun',
    'metadata', jsonb_build_object('name', 'build-' || i, 'namespace', ns, 'uid', pr,
      'creationTimestamp', to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'labels', jsonb_build_object('tekton.dev/pipeline', 'build', 'app', CASE WHEN i % 3 = 0 THEN 'web' ELSE 'api' END),
      'annotations', jsonb_build_object('results.tekton.dev/record', ns || '/results/' || pr || '/records/' || pr)),
    'spec', jsonb_build_object('pipelineRef', jsonb_build_object('name', 'build')),
    'status', jsonb_build_object('startTime', to_char((created + interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'completionTime', to_char((created + interval '20 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'conditions', jsonb_build_array(jsonb_build_object('type', 'Succeeded', 'status', CASE reason WHEN 'Succeeded' THEN 'True' ELSE 'False' END, 'reason', reason)))),
  created, created + interval '20 minutes', 'e'
FROM runs;

INSERT INTO records
SELECT ns, res, md5('trrec' || i || '-' || j)::uuid::text, pr, md5('tr' || i || '-' || j)::uuid::text, 'tekton.dev/v1.TaskRun',
  jsonb_build_object('apiVersion', 'tekton.dev/v1', 'kind', 'TaskRun',
    'metadata', jsonb_build_object('name', 'build-' || i || '-task-' || j, 'namespace', ns, 'uid', md5('tr' || i || '-' || j)::uuid::text,
      'labels', jsonb_build_object('tekton.dev/pipelineRun', 'build-' || i, 'tekton.dev/pipelineTask', 'task-' || j, 'tekton.dev/task', 'step-' || j),
      'ownerReferences', jsonb_build_array(jsonb_build_object('apiVersion', 'tekton.dev/v1', 'kind', 'PipelineRun', 'name', 'build-' || i, 'uid', pr))),
    'spec', jsonb_build_object('taskRef', jsonb_build_object('name', 'step-' || j), 'params', jsonb_build_array(jsonb_build_object('name', 'revision', 'value', md5('rev' || i)))),
    'status', jsonb_build_object('podName', 'build-' || i || '-task-' || j || '-pod',
      'steps', jsonb_build_array(jsonb_build_object('name', 'run', 'container', 'step-run', 'terminated', jsonb_build_object('exitCode', 0))),
      'conditions', jsonb_build_array(jsonb_build_object('type', 'Succeeded', 'status', 'True', 'reason', 'Succeeded')))),
  created + j * interval '1 second', created + j * interval '3 minutes', 'e'
FROM runs, generate_series(1, 5) AS j;

INSERT INTO records
SELECT ns, res, md5('logrec' || i || '-' || j)::uuid::text, pr, md5('log' || i || '-' || j)::uuid::text, 'results.tekton.dev/v1alpha3.Log',
  jsonb_build_object('kind', 'Log', 'apiVersion', 'results.tekton.dev/v1alpha3',
    'metadata', jsonb_build_object('uid', md5('log' || i || '-' || j)::uuid::text, 'name', 'build-' || i || '-task-' || j || '-log', 'namespace', ns),
    'spec', jsonb_build_object('type', 'File', 'resource', jsonb_build_object('kind', 'TaskRun', 'namespace', ns, 'name', 'build-' || i || '-task-' || j, 'uid', md5('tr' || i || '-' || j)::uuid::text)),
    'status', jsonb_build_object('path', ns || '/' || md5('log' || i || '-' || j)::uuid::text || '/build-' || i || '-task-' || j || '-log',
      'size', 100 + j, 'isStored', true, 'isRetryableErr', false, 'errorOnStoreMsg', '')),
  created + interval '20 minutes', created + interval '21 minutes', 'e'
FROM runs, generate_series(1, 4) AS j;

INSERT INTO records
SELECT ns, res, md5('bad')::uuid::text, pr, 'not-a-uuid', 'tekton.dev/v1.TaskRun', '{"kind":"TaskRun"}', created, created, 'e'
FROM runs WHERE i = 2;
`

// tektonResultsDB creates upstream's tables in a PostgreSQL schema of
// their own, filled with runs PipelineRuns, and returns its URL.
func tektonResultsDB(t testing.TB, runs int) string {
	t.Helper()
	base := storetest.PostgresURL()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", base, err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := fmt.Sprintf("tekton_results_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, stmt := range strings.Split(tektonResultsSchema+tektonResultsFill, ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		var args []any
		if strings.Contains(stmt, "$1") {
			args = append(args, runs)
		}
		if _, err := conn.ExecContext(context.Background(), stmt, args...); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	return u.String()
}

// Copying a Tekton Results database keeps what its clients see: names,
// types, data, creation and update times, annotations, each Result's
// summary run; log bytes come from the logs directory; a second run
// changes nothing, and an upstream change is carried over as an update.
// ANNALS_TKIMPORT_RUNS sets the PipelineRuns (10 Records each; 300 by
// default, 5000 for the 50,000 Records measured in the README).
func TestTektonResultsImport(t *testing.T) {
	runs := 300
	if v, err := strconv.Atoi(os.Getenv("ANNALS_TKIMPORT_RUNS")); err == nil && v > 0 {
		runs = v
	}
	ctx := context.Background()
	srcURL := tektonResultsDB(t, runs)
	src, err := store.OpenTektonResults(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	totalResults, totalRecords, err := src.Count(ctx)
	if err != nil || totalResults != int64(runs) || totalRecords != int64(runs*10+1) {
		t.Fatalf("upstream holds %d Results, %d Records (%v)", totalResults, totalRecords, err)
	}

	// Log files for the first three runs only, in upstream's layout.
	logsDir := t.TempDir()
	logFiles := map[string]string{} // Annals record name: content
	for after := (store.TektonKey{}); ; {
		rows, err := src.ReadRecords(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			var doc tektonLog
			if r.Type != store.TypeLog || json.Unmarshal(r.Data, &doc) != nil {
				continue
			}
			if n := doc.Metadata.Name; strings.HasPrefix(n, "build-1-task-") || strings.HasPrefix(n, "build-2-task-") || strings.HasPrefix(n, "build-3-task-") {
				content := strings.Repeat("line of "+doc.Metadata.Name+"\n", 20000) // about 600 KiB: several chunks
				path := filepath.Join(logsDir, doc.Status.Path)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				logFiles[store.RecordName(r.Parent, r.ResultName, r.Name)] = content
			}
		}
		last := rows[len(rows)-1]
		after = store.TektonKey{Parent: last.Parent, ResultID: last.ResultID, ID: last.ID}
	}
	if len(logFiles) != 12 {
		t.Fatalf("wrote %d log files, want 12", len(logFiles))
	}

	storetest.Run(t, func(t *testing.T, s *store.Store) {
		var out bytes.Buffer
		ti := &tektonImport{src: src, dst: s, logsDir: logsDir, batch: 500, out: &out}
		start := time.Now()
		rep, err := ti.run(ctx)
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		t.Logf("%d Records in %v: %.0f Records/s", totalRecords, time.Since(start).Round(time.Millisecond), rep.RecordsPerSecond)
		logs := runs * 4
		if rep.Results.New != runs || rep.Records.New != runs*10 || len(rep.Records.Skipped) != 1 ||
			rep.LogsImported != 12 || len(rep.LogsNotImported) != logs-12 {
			t.Fatalf("first import: %+v\n%s", rep, out.String())
		}
		if !strings.Contains(rep.Records.Skipped[0].Name, "/records/not-a-uuid") || !strings.Contains(out.String(), "records/s") {
			t.Errorf("report:\n%s", out.String())
		}
		checkImported(t, s, src)
		for name, content := range logFiles {
			rec, err := s.GetRecord(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.OpenLog(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if string(got) != content {
				t.Errorf("log %s: %d bytes, want %d", name, len(got), len(content))
			}
		}

		// Again: nothing changes, not even versions.
		sample := store.ResultName("ci", uuidOf("pr2"))
		before, err := s.GetResult(ctx, sample)
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		rep, err = ti.run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Results.New+rep.Results.Updated != 0 || rep.Results.Unchanged != runs || rep.Records.New+rep.Records.Updated != 0 ||
			rep.Records.Unchanged != runs*10 || rep.LogsImported != 0 || rep.LogsAlreadyThere != 12 {
			t.Fatalf("second import: %+v\n%s", rep, out.String())
		}
		if after, _ := s.GetResult(ctx, sample); after.Version != before.Version || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("second import touched %s: %+v, was %+v", sample, after, before)
		}
		checkImported(t, s, src)

		// An upstream change comes over as an update.
		upstream, err := sql.Open("pgx", srcURL)
		if err != nil {
			t.Fatal(err)
		}
		defer upstream.Close()
		for _, stmt := range []string{
			`UPDATE results SET annotations = '{"team":"moved"}', updated_time = updated_time + interval '1 hour' WHERE name = '` + uuidOf("pr4") + `'`,
			`UPDATE records SET data = jsonb_set(data, '{metadata,labels,app}', '"moved"'), updated_time = updated_time + interval '1 hour' WHERE name = '` + uuidOf("tr4-1") + `'`,
		} {
			if _, err := upstream.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		if rep, err = ti.run(ctx); err != nil {
			t.Fatal(err)
		}
		if rep.Results.Updated != 1 || rep.Records.Updated != 1 || rep.Records.New != 0 {
			t.Fatalf("after an upstream change: %+v", rep)
		}
		checkImported(t, s, src)
		moved, err := s.GetRecord(ctx, store.RecordName("ci", uuidOf("pr4"), uuidOf("tr4-1")))
		if err != nil || moved.Labels["app"] != "moved" {
			t.Errorf("updated Record: labels %v, %v", moved.Labels, err)
		}
		// Put it back for the other database.
		for _, stmt := range []string{
			`UPDATE results SET annotations = '{"object.metadata.name":"build-4","team":"api"}', updated_time = updated_time - interval '1 hour' WHERE name = '` + uuidOf("pr4") + `'`,
			`UPDATE records SET data = jsonb_set(data, '{metadata,labels,app}', '"api"'), updated_time = updated_time - interval '1 hour' WHERE name = '` + uuidOf("tr4-1") + `'`,
		} {
			if _, err := upstream.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// checkImported compares every upstream Result and Record with what the
// store holds under the same name.
func checkImported(t *testing.T, s *store.Store, src *store.TektonResults) {
	t.Helper()
	ctx := context.Background()
	for after := (store.TektonKey{}); ; {
		rows, err := src.ReadResults(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		names := make([]string, len(rows))
		for i, r := range rows {
			names[i] = store.ResultName(r.Parent, r.Name)
		}
		got, err := s.GetResultsByName(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]store.Key, 0, len(got))
		for _, r := range got {
			keys = append(keys, store.Key{Namespace: r.Namespace, UID: r.UID})
		}
		annotations, err := s.AnnotationsByResult(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			res := got[names[i]]
			if res == nil {
				t.Fatalf("Result %s missing", names[i])
			}
			if !res.CreatedAt.Equal(r.CreatedTime) || !res.UpdatedAt.Equal(r.UpdatedTime) {
				t.Errorf("%s: times %v %v, want %v %v", names[i], res.CreatedAt, res.UpdatedAt, r.CreatedTime, r.UpdatedTime)
			}
			have := map[string]string{}
			for _, a := range annotations[store.Key{Namespace: res.Namespace, UID: res.UID}] {
				have[a.Key] = a.Value
			}
			if len(have) != len(r.Annotations) || (len(have) > 0 && !reflect.DeepEqual(have, r.Annotations)) {
				t.Errorf("%s: annotations %v, want %v", names[i], have, r.Annotations)
			}
			if want := names[i] + "/records/" + r.Name; res.SummaryRecord != want || res.SummaryEndTime == nil || res.SummaryType != store.TypePipelineRun {
				t.Errorf("%s: summary %q %v, want %q", names[i], res.SummaryRecord, res.SummaryEndTime, want)
			}
		}
		last := rows[len(rows)-1]
		after = store.TektonKey{Parent: last.Parent, ID: last.ID}
	}
	for after := (store.TektonKey{}); ; {
		rows, err := src.ReadRecords(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		var names []string
		for _, r := range rows {
			if r.Name != "not-a-uuid" {
				names = append(names, store.RecordName(r.Parent, r.ResultName, r.Name))
			}
		}
		got, err := s.GetRecordsByName(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Name == "not-a-uuid" {
				continue
			}
			name := store.RecordName(r.Parent, r.ResultName, r.Name)
			rec := got[name]
			if rec == nil {
				t.Fatalf("Record %s missing", name)
			}
			if rec.DataType != r.Type || !rec.CreatedAt.Equal(r.CreatedTime) || !rec.UpdatedAt.Equal(r.UpdatedTime) || !jsonEqual(t, rec.Data, r.Data) {
				t.Errorf("%s: stored %s %v %v %s,\nwant %s %v %v %s", name, rec.DataType, rec.CreatedAt, rec.UpdatedAt, rec.Data, r.Type, r.CreatedTime, r.UpdatedTime, r.Data)
			}
		}
		last := rows[len(rows)-1]
		after = store.TektonKey{Parent: last.Parent, ResultID: last.ResultID, ID: last.ID}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// uuidOf is PostgreSQL's md5(s)::uuid::text.
func uuidOf(s string) string {
	h := fmt.Sprintf("%x", md5.Sum([]byte(s)))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
