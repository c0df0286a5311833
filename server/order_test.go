package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestRunOrdersAndFiltersOverGraphQL: the imported fixture's runs through
// the new orders and filters, and the errors of bad input.
func TestRunOrdersAndFiltersOverGraphQL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		tests := []struct {
			name, query string
			want        []string // run names in order
			code, says  string
		}{
			{name: "task runs of every version by name", query: `{ records(parent: "-", where: {kinds: [TASK_RUN], nameContains: "-"}, orderBy: {field: NAME, direction: ASC}) { nodes { taskRun { name } } } }`,
				want: []string{"backup-db-z1x9c", "build-web-7x2kq-compile", "build-web-7x2kq-fetch", "build-web-7x2kq-test", "build-web-9fk3m-compile",
					"build-web-9fk3m-fetch", "build-web-k8d9s-fetch", "deploy-api-2mzpq-rollout", "lint-docs-q7w2e"}},
			{name: "exact names", query: `{ records(parent: "-", where: {runNames: ["build-web-9fk3m", "backup-db-z1x9c"]}, orderBy: {field: NAME, direction: DESC}) { nodes { taskRun { name } pipelineRun { name } } } }`,
				want: []string{"build-web-9fk3m", "backup-db-z1x9c"}},
			{name: "pipeline runs by pipeline", query: `{ records(parent: "-", where: {kinds: [PIPELINE_RUN]}, orderBy: {field: PIPELINE, direction: ASC}) { nodes { pipelineRun { pipelineName } } } }`},
			{name: "short data type", query: `{ records(parent: "-", where: {dataTypes: ["PipelineRun"]}) { totalCount } }`,
				code: "INVALID_ARGUMENT", says: "tekton.dev/v1.PipelineRun"},
			{name: "results by name", query: `{ results(parent: "-", orderBy: {field: NAME}) { totalCount } }`,
				code: "INVALID_ARGUMENT", says: "START_TIME"},
		}
		for _, tt := range tests {
			_, resp := postStatus(t, h, tt.query, nil)
			if resp.code() != tt.code || (tt.says != "" && !strings.Contains(resp.Errors[0].Message, tt.says)) {
				t.Errorf("%s: code %q %+v, want %q saying %q", tt.name, resp.code(), resp.Errors, tt.code, tt.says)
				continue
			}
			if tt.want == nil {
				continue
			}
			var got struct {
				Records struct {
					Nodes []struct {
						TaskRun, PipelineRun *struct{ Name string }
					}
				}
			}
			json.Unmarshal(resp.Data, &got)
			var names []string
			for _, n := range got.Records.Nodes {
				if n.TaskRun != nil {
					names = append(names, n.TaskRun.Name)
				} else if n.PipelineRun != nil {
					names = append(names, n.PipelineRun.Name)
				}
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") {
				t.Errorf("%s:\n got %v\nwant %v", tt.name, names, tt.want)
			}
		}
	})
}
