package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
)

// writeImportFile writes about records generated runs (PipelineRuns with
// their TaskRuns, finished) as `kubectl get -o json` does: one List. With
// tasksFirst each pipeline's TaskRuns come before their PipelineRun, which
// they name by label only: the order that makes an import wait for the
// PipelineRun. It returns the runs written.
func writeImportFile(w io.Writer, gen *generator, records int, tasksFirst bool) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	bw.WriteString(`{"apiVersion":"v1","items":[`)
	written := 0
	for written < records {
		p := gen.newPipeline(rnd)
		runs := gen.writes(rnd, p, 2)
		if tasksFirst {
			runs = append(runs[1:], runs[0])
		}
		for _, r := range runs {
			if written > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n")
			if _, err := bw.Write(r.Data); err != nil {
				return written, err
			}
			written++
		}
	}
	if _, err := fmt.Fprint(bw, "\n],\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"}}\n"); err != nil {
		return written, err
	}
	return written, bw.Flush()
}
