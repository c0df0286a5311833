package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/annals-dev/annals/store"
)

// tektonImport copies a Tekton Results database into the store: every
// Result (name, times, annotations), then every Record (name, type, data,
// times), each Result's summary run filling its summary, then the bytes of
// Logs found under logsDir. Each step reads upstream by keyset in batches,
// so memory holds one batch whatever the size of the database, and writes
// only what differs from what is stored, so running it again changes
// nothing.
type tektonImport struct {
	src     *store.TektonResults
	dst     *store.Store
	logsDir string    // upstream's LOGS_PATH (File storage) or a copy of its S3 bucket; "" imports no log bytes
	batch   int       // rows read and written at a time
	out     io.Writer // progress and the report
	now     func() time.Time
}

// tektonImportReport is what an import did.
type tektonImportReport struct {
	Results, Records store.ImportOutcome
	LogsImported     int
	LogBytes         int64
	LogsAlreadyThere int
	LogsNotImported  []store.ImportSkip
	RecordsPerSecond float64
}

func (ti *tektonImport) run(ctx context.Context) (*tektonImportReport, error) {
	if ti.batch <= 0 {
		ti.batch = 500
	}
	if ti.now == nil {
		ti.now = time.Now
	}
	totalResults, totalRecords, err := ti.src.Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting Tekton Results' rows: %w", err)
	}
	fmt.Fprintf(ti.out, "importing %d Results and %d Records from Tekton Results\n", totalResults, totalRecords)
	rep := &tektonImportReport{}

	var after store.TektonKey
	done := 0
	for {
		rows, err := ti.src.ReadResults(ctx, after, ti.batch)
		if err != nil {
			return rep, err
		}
		if len(rows) == 0 {
			break
		}
		batch := make([]store.ImportedResult, len(rows))
		for i, r := range rows {
			batch[i] = store.ImportedResult{Namespace: r.Parent, UID: r.Name, Annotations: r.Annotations, CreatedAt: r.CreatedTime, UpdatedAt: r.UpdatedTime}
		}
		out, err := ti.dst.ImportResults(ctx, batch)
		if err != nil {
			return rep, fmt.Errorf("storing Results after %s/results/%s: %w", after.Parent, after.ID, err)
		}
		rep.Results.Add(out)
		done += len(rows)
		last := rows[len(rows)-1]
		after = store.TektonKey{Parent: last.Parent, ID: last.ID}
		fmt.Fprintf(ti.out, "results: %d/%d\n", done, totalResults)
	}

	start, lastLine := ti.now(), ti.now()
	after, done = store.TektonKey{}, 0
	for {
		rows, err := ti.src.ReadRecords(ctx, after, ti.batch)
		if err != nil {
			return rep, err
		}
		if len(rows) == 0 {
			break
		}
		batch := make([]store.ImportedRecord, len(rows))
		for i, r := range rows {
			batch[i] = store.ImportedRecord{Namespace: r.Parent, ResultUID: r.ResultName, UID: r.Name, DataType: r.Type, Data: r.Data,
				CreatedAt: r.CreatedTime, UpdatedAt: r.UpdatedTime, Summary: r.Summary, ResultUpdatedAt: r.ResultUpdatedTime}
		}
		out, err := ti.dst.ImportRecords(ctx, batch)
		if err != nil {
			return rep, fmt.Errorf("storing Records after %s/%s/%s: %w", after.Parent, after.ResultID, after.ID, err)
		}
		rep.Records.Add(out)
		if err := ti.importLogs(ctx, batch, out.Skipped, rep); err != nil {
			return rep, err
		}
		done += len(rows)
		last := rows[len(rows)-1]
		after = store.TektonKey{Parent: last.Parent, ResultID: last.ResultID, ID: last.ID}
		if elapsed := ti.now().Sub(start); ti.now().Sub(lastLine) >= time.Second || len(rows) < ti.batch {
			lastLine = ti.now()
			fmt.Fprintf(ti.out, "records: %d/%d (%.0f records/s)\n", done, totalRecords, float64(done)/max(elapsed.Seconds(), 1e-3))
		}
	}
	rep.RecordsPerSecond = float64(done) / max(ti.now().Sub(start).Seconds(), 1e-3)
	if err := ti.dst.Analyze(ctx); err != nil {
		return rep, err
	}
	ti.print(rep)
	return rep, nil
}

// tektonLog is what the import reads of Tekton Results' Log Record: where
// File storage put its bytes (status.path under LOGS_PATH, or
// <namespace>/<uid>/<name> when the path was never set).
type tektonLog struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Type string `json:"type"`
	} `json:"spec"`
	Status struct {
		Path string `json:"path"`
	} `json:"status"`
}

// importLogs stores the bytes of the batch's Logs that have none stored
// yet, from logsDir; the others are reported as not imported.
func (ti *tektonImport) importLogs(ctx context.Context, batch []store.ImportedRecord, skipped []store.ImportSkip, rep *tektonImportReport) error {
	notStored := map[string]bool{}
	for _, s := range skipped {
		notStored[s.Name] = true
	}
	var logs []store.ImportedRecord
	var keys []store.Key
	for _, r := range batch {
		if store.IsTektonLog(r.DataType) && !notStored[r.Name()] {
			logs = append(logs, r)
			keys = append(keys, store.Key{Namespace: r.Namespace, UID: r.UID})
		}
	}
	if len(logs) == 0 {
		return nil
	}
	have, err := ti.dst.LogsStored(ctx, keys)
	if err != nil {
		return err
	}
	for _, r := range logs {
		if have[store.Key{Namespace: r.Namespace, UID: r.UID}] {
			rep.LogsAlreadyThere++
			continue
		}
		if ti.logsDir == "" {
			rep.LogsNotImported = append(rep.LogsNotImported, store.ImportSkip{Name: r.Name(), Why: "no --tekton-logs-dir given"})
			continue
		}
		var doc tektonLog
		if err := json.Unmarshal(r.Data, &doc); err != nil {
			rep.LogsNotImported = append(rep.LogsNotImported, store.ImportSkip{Name: r.Name(), Why: fmt.Sprintf("not a Tekton Results Log: %v", err)})
			continue
		}
		rel := doc.Status.Path
		if rel == "" {
			rel = filepath.Join(doc.Metadata.Namespace, doc.Metadata.UID, doc.Metadata.Name)
		}
		if !filepath.IsLocal(rel) {
			rep.LogsNotImported = append(rep.LogsNotImported, store.ImportSkip{Name: r.Name(), Why: fmt.Sprintf("status.path %q leaves the logs directory", rel)})
			continue
		}
		f, err := os.Open(filepath.Join(ti.logsDir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			rep.LogsNotImported = append(rep.LogsNotImported, store.ImportSkip{Name: r.Name(), Why: fmt.Sprintf("no file %s in %s (%s storage)", rel, ti.logsDir, doc.Spec.Type)})
			continue
		}
		if err != nil {
			return fmt.Errorf("log of %s: %w", r.Name(), err)
		}
		n, err := ti.dst.ImportLogBytes(ctx, r.Namespace, r.UID, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("log of %s: %w", r.Name(), err)
		}
		rep.LogsImported++
		rep.LogBytes += n
	}
	return nil
}

// maxListed bounds the names a report lists of each kind.
const maxListed = 20

func (ti *tektonImport) print(rep *tektonImportReport) {
	line := func(what string, o store.ImportOutcome) {
		fmt.Fprintf(ti.out, "%s: %d new, %d updated, %d unchanged, %d not imported\n", what, o.New, o.Updated, o.Unchanged, len(o.Skipped))
	}
	line("Results", rep.Results)
	line("Records", rep.Records)
	fmt.Fprintf(ti.out, "Records per second: %.0f\n", rep.RecordsPerSecond)
	fmt.Fprintf(ti.out, "Logs: %d imported (%d bytes), %d already stored, %d not imported\n",
		rep.LogsImported, rep.LogBytes, rep.LogsAlreadyThere, len(rep.LogsNotImported))
	list := func(what string, skips []store.ImportSkip) {
		for i, s := range skips {
			if i == maxListed {
				fmt.Fprintf(ti.out, "  ... and %d more\n", len(skips)-maxListed)
				break
			}
			fmt.Fprintf(ti.out, "  %s not imported: %s: %s\n", what, s.Name, s.Why)
		}
	}
	list("Result", rep.Results.Skipped)
	list("Record", rep.Records.Skipped)
	list("log of", rep.LogsNotImported)
}

// runTektonImport is `annals import --from-tekton-results URL`.
func runTektonImport(ctx context.Context, db databaseFlags, logs logFlags, fromURL, logsDir string, batch int) error {
	if logsDir != "" {
		if st, err := os.Stat(logsDir); err != nil || !st.IsDir() {
			return fmt.Errorf("--tekton-logs-dir %s: not a directory (give the directory Tekton Results' LOGS_PATH points to)", logsDir)
		}
	}
	src, err := store.OpenTektonResults(ctx, fromURL)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := db.open(ctx, logs.apply(store.Options{}))
	if err != nil {
		return err
	}
	defer dst.Close()
	if _, err := dst.Migrate(ctx); err != nil {
		return err
	}
	ti := &tektonImport{src: src, dst: dst, logsDir: logsDir, batch: batch, out: os.Stdout}
	_, err = ti.run(ctx)
	return err
}
