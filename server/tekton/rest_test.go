package tekton_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/annals-dev/annals/server"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	base  = "/apis/results.tekton.dev/v1alpha2/"
	prUID = "6f1c2a40-8e1b-4c65-9a0e-1d2b3c4d5e6f"
	trUID = "81e74ef5-2d3c-4b5a-8f9e-0a1b2c3d4e5f"
)

// client speaks REST to a test server, as tkn-results and the console do.
type client struct {
	t      *testing.T
	url    string
	header http.Header
}

// answer is one REST answer: its status, its JSON as a map, and its body.
type answer struct {
	status int
	header http.Header
	json   map[string]any
	body   []byte
}

func (c client) do(method, path, body string) answer {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if err := json.Unmarshal(a.body, &a.json); err != nil {
		c.t.Fatalf("%s %s: %d %q is not a JSON object: %v", method, path, a.status, a.body, err)
	}
	return a
}

// ok fails unless the answer is 200, then decodes it strictly into msg,
// as tkn-results does: an unknown field is an error.
func (a answer) ok(t *testing.T, msg proto.Message) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if msg != nil {
		if err := protojson.Unmarshal(a.body, msg); err != nil {
			t.Fatalf("strict decoding of %s: %v", a.body, err)
		}
	}
}

// failed checks an error answer: HTTP status, gRPC code, a message
// mentioning want, and no other keys.
func (a answer) failed(t *testing.T, status, code int, want string) {
	t.Helper()
	if a.status != status || a.json["code"] != float64(code) || !strings.Contains(fmt.Sprint(a.json["message"]), want) {
		t.Errorf("got %d %s; want %d with code %d mentioning %q", a.status, a.body, status, code, want)
	}
	for k := range a.json {
		if k != "code" && k != "message" {
			t.Errorf("unexpected key %q in error %s", k, a.body)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func fixtureJSON(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func newClient(t *testing.T, s *store.Store) client {
	ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
	t.Cleanup(ts.Close)
	return client{t: t, url: ts.URL}
}

// seed creates, through the API, a PipelineRun's Result with its Record
// and a TaskRun Record, as upstream's watcher lays them out.
func seed(t *testing.T, c client) {
	t.Helper()
	c.do("POST", base+"parents/ci/results", `{"name":"ci/results/`+prUID+`","annotations":{"object.metadata.name":"build-1","team":"web"}}`).ok(t, nil)
	c.do("POST", base+"parents/ci/results/"+prUID+"/records",
		`{"name":"ci/results/`+prUID+`/records/`+prUID+`","data":{"type":"tekton.dev/v1.PipelineRun","value":"`+fixtureJSON(t, "pipelinerun.json")+`"}}`).ok(t, nil)
	c.do("POST", base+"parents/ci/results/"+prUID+"/records",
		`{"name":"ci/results/`+prUID+`/records/`+trUID+`","data":{"type":"tekton.dev/v1.TaskRun","value":"`+fixtureJSON(t, "taskrun.json")+`"}}`).ok(t, nil)
}

func TestResultsREST(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		c := newClient(t, s)
		resultName := "ci/results/" + prUID

		// Create: the answer is the Result with the deprecated twins, and
		// nothing else (tkn-results rejects unknown fields).
		created := c.do("POST", base+"parents/ci/results", `{"name":"`+resultName+`","annotations":{"team":"web"},"uid":"ignored","etag":"ignored"}`)
		var res pb.Result
		created.ok(t, &res)
		if got := keys(created.json); !slices.Equal(got, []string{"annotations", "create_time", "created_time", "etag", "id", "name", "uid", "update_time", "updated_time"}) {
			t.Errorf("result keys %v", got)
		}
		if res.Uid != prUID || res.Id != res.Uid || !proto.Equal(res.CreateTime, res.CreatedTime) || res.Etag != fmt.Sprintf("%s-%d", res.Uid, res.UpdateTime.AsTime().UnixNano()) {
			t.Errorf("result %v", &res)
		}
		if ts := created.json["create_time"].(string); !strings.HasSuffix(ts, "Z") {
			t.Errorf("create_time %q is not RFC 3339 in UTC", ts)
		}
		c.do("POST", base+"parents/ci/results", `{"name":"`+resultName+`"}`).failed(t, 409, 6, "already exists")
		c.do("POST", base+"parents/prod/results", `{"name":"`+resultName+`"}`).failed(t, 400, 3, "requested parent does not match resource name")
		c.do("POST", base+"parents/ci/results", `{"name":"ci/Results/x"}`).failed(t, 400, 3, "name must match")
		c.do("POST", base+"parents/ci/results", `{"name":`).failed(t, 400, 3, "")

		// Get, and the errors of names.
		got := c.do("GET", base+"parents/ci/results/"+prUID, "")
		got.ok(t, nil)
		if got.json["annotations"].(map[string]any)["team"] != "web" {
			t.Errorf("annotations: %s", got.body)
		}
		c.do("GET", base+"parents/ci/results/0a0a0a0a-0000-4000-8000-000000000000", "").failed(t, 404, 5, "record not found")
		c.do("GET", base+"parents/ci/results/Bad", "").failed(t, 400, 3, "name must match")

		// Update replaces annotations and summary; the name comes from
		// the path (B2); a wrong etag is FailedPrecondition, HTTP 400.
		c.do("PATCH", base+"parents/ci/results/"+prUID+"?etag=nope", `{}`).failed(t, 400, 9, "etag")
		c.do("PATCH", base+"parents/ci/results/"+prUID+"?name=ci/results/other", `{}`).failed(t, 400, 3, "does not match")
		upd := c.do("PATCH", base+"parents/ci/results/"+prUID+"?etag="+url.QueryEscape(res.Etag)+"&name="+url.QueryEscape(resultName),
			`{"annotations":{"object.metadata.name":"build-1"},"summary":{"record":"`+resultName+`/records/`+prUID+`","type":"tekton.dev/v1.PipelineRun","start_time":"2026-11-01T00:08:00Z","endTime":"2026-11-01T00:24:46Z","status":"SUCCESS"}}`)
		var updated pb.Result
		upd.ok(t, &updated)
		if updated.Annotations["team"] != "" || updated.Annotations["object.metadata.name"] != "build-1" || updated.Etag == res.Etag ||
			updated.Summary.GetStatus() != pb.RecordSummary_SUCCESS || updated.Summary.GetEndTime().AsTime().Minute() != 24 {
			t.Errorf("updated %s", upd.body)
		}
		if sum := upd.json["summary"].(map[string]any); !slices.Equal(keys(sum), []string{"end_time", "record", "start_time", "status", "type"}) || sum["status"] != "SUCCESS" {
			t.Errorf("summary %v", sum)
		}
		cleared := c.do("PATCH", base+"parents/ci/results/"+prUID, `{}`)
		cleared.ok(t, nil)
		if _, ok := cleared.json["summary"]; ok {
			t.Errorf("an update without summary keeps it: %s", cleared.body)
		}
		if _, ok := cleared.json["annotations"]; ok {
			t.Errorf("an update without annotations keeps them: %s", cleared.body)
		}

		// Records: create echoes the data; bad data is refused.
		value := fixtureJSON(t, "pipelinerun.json")
		rec := c.do("POST", base+"parents/ci/results/"+prUID+"/records",
			`{"name":"`+resultName+`/records/`+prUID+`","data":{"type":"tekton.dev/v1.PipelineRun","value":"`+value+`"}}`)
		var record pb.Record
		rec.ok(t, &record)
		if got := keys(rec.json); !slices.Equal(got, []string{"create_time", "created_time", "data", "etag", "id", "name", "uid", "update_time", "updated_time"}) {
			t.Errorf("record keys %v", got)
		}
		if rec.json["data"].(map[string]any)["value"] != value {
			t.Errorf("create does not echo data.value")
		}
		recordsOf := base + "parents/ci/results/" + prUID + "/records"
		c.do("POST", recordsOf, `{"name":"`+resultName+`/records/`+prUID+`","data":{"type":"x","value":"e30="}}`).failed(t, 409, 6, "")
		c.do("POST", recordsOf, `{"name":"`+resultName+`/records/0a0a0a0a-0000-4000-8000-000000000001","data":{"type":"x","value":"`+base64.StdEncoding.EncodeToString([]byte("nope"))+`"}}`).
			failed(t, 400, 3, "invalid character 'o' in literal null (expecting 'u')")
		c.do("POST", recordsOf, `{"name":"`+resultName+`/records/0a0a0a0a-0000-4000-8000-000000000001","data":{"type":"x","value":{"a":1}}}`).failed(t, 400, 3, "value")
		c.do("POST", base+"parents/ci/results/0a0a0a0a-0000-4000-8000-000000000009/records",
			`{"name":"ci/results/0a0a0a0a-0000-4000-8000-000000000009/records/0a0a0a0a-0000-4000-8000-000000000001","data":{"type":"x","value":"e30="}}`).failed(t, 404, 5, "record not found")
		c.do("POST", base+"parents/ci/results/"+trUID+"/records", `{"name":"`+resultName+`/records/`+trUID+`","data":{"type":"x","value":"e30="}}`).
			failed(t, 400, 3, "requested parent does not match resource name")
		c.do("POST", recordsOf, `{"name":"`+resultName+`/records/`+trUID+`","data":{"type":"tekton.dev/v1.TaskRun","value":"`+fixtureJSON(t, "taskrun.json")+`"}}`).ok(t, nil)

		// Get, update with etag, then delete.
		var stored pb.Record
		c.do("GET", recordsOf+"/"+trUID, "").ok(t, &stored)
		var tr map[string]any
		if err := json.Unmarshal(stored.Data.Value, &tr); err != nil || tr["kind"] != "TaskRun" {
			t.Errorf("stored data %s: %v", stored.Data.Value, err)
		}
		c.do("PATCH", recordsOf+"/"+trUID+"?etag=nope", `{}`).failed(t, 400, 9, "etag")
		newValue := base64.StdEncoding.EncodeToString([]byte(`{"kind":"TaskRun","metadata":{"name":"build-1-compile","labels":{"tekton.dev/pipelineRun":"build-1"}},"status":{}}`))
		var changed pb.Record
		c.do("PATCH", recordsOf+"/"+trUID+"?etag="+url.QueryEscape(stored.Etag)+"&update_mask=data",
			`{"data":{"type":"tekton.dev/v1.TaskRun","value":"`+newValue+`"}}`).ok(t, &changed)
		if changed.Etag == stored.Etag || !changed.UpdateTime.AsTime().After(stored.UpdateTime.AsTime()) || base64.StdEncoding.EncodeToString(changed.Data.Value) != newValue {
			t.Errorf("updated record %v", &changed)
		}
		c.do("PATCH", recordsOf+"/"+trUID, `{"data":{"type":"tekton.dev/v1.TaskRun","value":"`+fixtureJSON(t, "taskrun.json")+`"}}`).ok(t, nil)
		c.do("DELETE", recordsOf+"/0a0a0a0a-0000-4000-8000-000000000001", "").failed(t, 404, 5, "record not found")
		c.do("GET", recordsOf+"/not_a_uuid", "").failed(t, 404, 5, "record not found")

		// Routing: summary wins, unknown paths and methods.
		if a := c.do("GET", recordsOf+"/summary", ""); a.status == 404 {
			t.Errorf("summary route: %s", a.body)
		}
		c.do("GET", base+"parents/ci/nothing", "").failed(t, 404, 5, "Not Found")
		c.do("PUT", base+"parents/ci/results/"+prUID, "{}").failed(t, 501, 12, "Method Not Allowed")

		// Deleting a Result deletes its Records.
		c.do("DELETE", base+"parents/ci/results/"+prUID, "").ok(t, nil)
		if a := c.do("DELETE", base+"parents/ci/results/"+prUID, ""); a.status != 404 {
			t.Errorf("deleting twice: %d %s", a.status, a.body)
		}
		if a := c.do("GET", base+"parents/-/results/-/records", ""); string(a.body) != "{}" {
			t.Errorf("records left after deleting their Result: %s", a.body)
		}
	})
}

func TestListsREST(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		c := newClient(t, s)
		seed(t, c)
		// Ten more Results in prod, created one after another.
		var prod []string
		for i := range 10 {
			uid := fmt.Sprintf("0b0b0b0b-0000-4000-8000-%012d", i)
			c.do("POST", base+"parents/prod/results", `{"name":"prod/results/`+uid+`","annotations":{"n":"`+fmt.Sprint(i)+`"}}`).ok(t, nil)
			prod = append(prod, "prod/results/"+uid)
		}

		list := func(path string) (names []string, a answer) {
			t.Helper()
			a = c.do("GET", base+path, "")
			var out struct {
				Results []struct{ Name string } `json:"results"`
				Records []struct{ Name string } `json:"records"`
			}
			a.ok(t, nil)
			json.Unmarshal(a.body, &out)
			for _, r := range out.Results {
				names = append(names, r.Name)
			}
			for _, r := range out.Records {
				names = append(names, r.Name)
			}
			return names, a
		}

		// Paging with tokens, newest first by default; the last page, exactly
		// full, has no token.
		var pages [][]string
		path := "parents/prod/results?page_size=5&order_by=create_time+asc"
		for token := ""; ; {
			names, a := list(path + "&page_token=" + url.QueryEscape(token))
			pages = append(pages, names)
			tok, _ := a.json["next_page_token"].(string)
			if tok == "" {
				break
			}
			token = tok
		}
		if len(pages) != 2 || !slices.Equal(slices.Concat(pages...), prod) {
			t.Errorf("pages %v, want %v in two pages", pages, prod)
		}
		if names, _ := list("parents/prod/results?pageSize=6&orderBy=create_time%20DESC"); len(names) != 6 || names[0] != prod[9] {
			t.Errorf("newest first: %v", names)
		}
		if names, _ := list("parents/-/results?page_size=50"); len(names) != 11 {
			t.Errorf("parent -: %d results", len(names))
		}
		// Page sizes: 5 to 10000 (B9 keeps upstream's wording).
		for _, tt := range []struct {
			size string
			ok   bool
		}{{"5", true}, {"10000", true}, {"0", true}, {"4", false}, {"10001", false}, {"-1", false}} {
			a := c.do("GET", base+"parents/prod/results?page_size="+tt.size, "")
			if tt.ok != (a.status == 200) {
				t.Errorf("page_size=%s: %d %s", tt.size, a.status, a.body)
			}
			if !tt.ok {
				a.failed(t, 400, 3, "invalid page size ("+tt.size+"): value must be greater than 5 and less than 10000")
			}
		}
		c.do("GET", base+"parents/prod/results?page_size=ten", "").failed(t, 400, 3, `parsing field "page_size": strconv.ParseInt: parsing "ten": invalid syntax`)
		// Tokens: garbage and another query's are 400 (B11).
		_, first := list("parents/prod/results?page_size=5")
		token := first.json["next_page_token"].(string)
		c.do("GET", base+"parents/prod/results?page_size=5&page_token=garbage", "").failed(t, 400, 3, "invalid page token")
		c.do("GET", base+"parents/prod/results?page_size=5&filter=uid!=%22x%22&page_token="+url.QueryEscape(token), "").failed(t, 400, 3, "invalid page token")
		// order_by: one field, known names.
		for _, order := range []string{"name", "create_time desc, update_time", "desc create_time"} {
			c.do("GET", base+"parents/prod/results?order_by="+url.QueryEscape(order), "").failed(t, 400, 3, "")
		}
		for _, order := range []string{"summary.start_time", "summary.end_time asc", "update_time DESC"} {
			list("parents/prod/results?order_by=" + url.QueryEscape(order))
		}
		c.do("GET", base+recordsPath("ci", "-")+"?order_by=summary.start_time", "").failed(t, 400, 3, "order by")
		// An invalid parent lists nothing (B15).
		if _, a := list("parents/CI/results"); string(a.body) != "{}" {
			t.Errorf("parent CI: %s", a.body)
		}

		// Filters as clients write them, on Records (B6, B7) and Results.
		pr := `(data_type=="tekton.dev/v1.PipelineRun" || data_type=="tekton.dev/v1beta1.PipelineRun")`
		prName := "ci/results/" + prUID + "/records/" + prUID
		trName := "ci/results/" + prUID + "/records/" + trUID
		for _, tt := range []struct {
			path, filter string
			want         []string
		}{
			{recordsPath("ci", "-"), pr, []string{prName}},
			{recordsPath("-", "-"), pr + ` && data.metadata.labels["app"]=="web"`, []string{prName}},
			{recordsPath("ci", "-"), pr + ` && data.metadata.name.contains("ild-")`, []string{prName}},
			{recordsPath("ci", "-"), `name=="` + trUID + `"`, []string{trName}},
			{recordsPath("ci", "-"), `name.endsWith("records/` + trUID + `")`, nil},
			{recordsPath("ci", "-"), `data_type in ["tekton.dev/v1.TaskRun","tekton.dev/v1beta1.TaskRun"] && data.metadata.labels['tekton.dev/pipelineRun'] == 'build-1'`, []string{trName}},
			{recordsPath("ci", "-"), `data.metadata.labels.contains("tekton.dev/pipelineRun")`, []string{trName}},
			{recordsPath("ci", "-"), `!data.metadata.labels.contains("tekton.dev/pipelineRun")`, []string{prName}},
			{recordsPath("ci", "-"), `data.status.results.contains("image-sha")`, []string{prName}},
			{recordsPath("ci", "-"), `data.spec.pipelineRef.contains("name")`, []string{prName}},
			{recordsPath("ci", "-"), `data.metadata.creationTimestamp > "2026-11-01T00:08:00Z"`, []string{trName}},
			{recordsPath("ci", "-"), `data.status.startTime > timestamp("2026-11-01T00:08:01.000Z")`, []string{trName}},
			{recordsPath("ci", "-"), `data.metadata.labels["app"] in ["web", "api"]`, []string{prName}},
			{recordsPath("ci", "-"), `parent == "ci" && result_name == "` + prUID + `" && data_type == TASK_RUN`, []string{trName}},
			{recordsPath("-", prUID), `data_type == PIPELINE_RUN`, []string{prName}},
			{recordsPath("prod", prUID), ``, nil},
			{recordsPath("ci", prUID), `data.status.conditions[0].reason == "Failed"`, []string{trName}},
			{recordsPath("ci", "-"), `name == "x' OR 'a'='a"`, nil},
			{"parents/-/results", `parent == "ci"`, []string{"ci/results/" + prUID}},
			{"parents/-/results", `annotations["n"] == "3"`, []string{prod[3]}},
			{"parents/prod/results", `uid == "` + strings.TrimPrefix(prod[2], "prod/results/") + `"`, []string{prod[2]}},
		} {
			names, _ := list(tt.path + "?order_by=create_time+desc&filter=" + url.QueryEscape(tt.filter))
			if !slices.Equal(names, tt.want) {
				t.Errorf("%s filter %s: %v, want %v", tt.path, tt.filter, names, tt.want)
			}
		}
		c.do("GET", base+recordsPath("ci", "-")+"?filter="+url.QueryEscape(`foo == "x"`), "").failed(t, 400, 3, "undeclared reference to 'foo'")
		c.do("GET", base+recordsPath("ci", "-")+"?filter="+url.QueryEscape(`data.status.completionTime - data.status.startTime > duration("5m")`), "").failed(t, 400, 3, "")
		// tkn-results sends a JSON body with its GETs: ignored.
		if a := c.do("GET", base+recordsPath("ci", "-")+"?filter="+url.QueryEscape(pr), `{"parent":"ci/results/-","filter":"bogus ==","pageSize":50}`); a.status != 200 {
			t.Errorf("a GET body is read: %s", a.body)
		}
	})
}

func recordsPath(parent, result string) string {
	return "parents/" + parent + "/results/" + result + "/records"
}

func TestFieldsREST(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		c := newClient(t, s)
		seed(t, c)
		const list = "records.name,records.uid,records.create_time,records.update_time,records.data.value.metadata,records.data.value.status,next_page_token"
		pr := `data_type=="tekton.dev/v1.PipelineRun"`
		a := c.do("GET", base+recordsPath("ci", "-")+"?fields="+url.QueryEscape(list)+"&filter="+url.QueryEscape(pr), "")
		var out pb.ListRecordsResponse
		a.ok(t, &out)
		rec := a.json["records"].([]any)[0].(map[string]any)
		if got := keys(rec); !slices.Equal(got, []string{"create_time", "data", "name", "uid", "update_time"}) {
			t.Errorf("record keys with fields: %v", got)
		}
		if data := rec["data"].(map[string]any); !slices.Equal(keys(data), []string{"value"}) {
			t.Errorf("data.type is kept: %v", data)
		}
		var value map[string]any
		json.Unmarshal(out.Records[0].Data.Value, &value)
		if !slices.Equal(keys(value), []string{"metadata", "status"}) || value["metadata"].(map[string]any)["name"] != "build-1" {
			t.Errorf("projected value %v", value)
		}

		// Nested paths, missing paths null, and next_page_token dropped
		// unless asked for.
		a = c.do("GET", base+recordsPath("ci", "-")+"?page_size=5&fields=records.data.value.metadata.name,records.data.value.spec.nothing,records.data.value.metadata", "")
		a.ok(t, &out)
		json.Unmarshal(out.Records[0].Data.Value, &value)
		if _, ok := value["metadata"].(map[string]any)["uid"]; !ok || value["spec"].(map[string]any)["nothing"] != nil {
			t.Errorf("projection %s", out.Records[0].Data.Value)
		}
		// Through the header, as Grpc-Metadata-fields; map keys.
		c.header = http.Header{"Grpc-Metadata-Fields": {"results.name,results.annotations.team"}}
		a = c.do("GET", base+"parents/ci/results", "")
		res := a.json["results"].([]any)[0].(map[string]any)
		if !slices.Equal(keys(res), []string{"annotations", "name"}) || !slices.Equal(keys(res["annotations"].(map[string]any)), []string{"team"}) {
			t.Errorf("result with fields: %v", res)
		}
		c.header = nil
		a = c.do("GET", base+"parents/ci/results?fields=results.annotations.other,results.name", "")
		if res := a.json["results"].([]any)[0].(map[string]any); !slices.Equal(keys(res), []string{"name"}) {
			t.Errorf("unlisted map keys kept: %v", res)
		}
		// Single resources too.
		a = c.do("GET", base+recordsPath("ci", prUID)+"/"+trUID+"?fields=name", "")
		if !slices.Equal(keys(a.json), []string{"name"}) {
			t.Errorf("get with fields: %s", a.body)
		}
	})
}

func TestHealthz(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	c := newClient(t, s)
	if a := c.do("GET", "/healthz", ""); a.status != 200 || string(a.body) != `{"status":"SERVING"}` {
		t.Errorf("healthz: %d %s", a.status, a.body)
	}
	if a := c.do("GET", "/healthz?service=tekton.results.v1alpha2.Results", ""); a.status != 200 || a.json["status"] != "SERVING" {
		t.Errorf("healthz of Results: %d %s", a.status, a.body)
	}
	c.do("GET", "/healthz?service=nope", "").failed(t, 404, 5, "unknown service")
}

// TestPagesBeyondTheStorePage: page_size goes to 10000, above what the
// store reads at once; the pages and their tokens stay exact.
func TestPagesBeyondTheStorePage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		c := newClient(t, s)
		const n = store.MaxPageSize + 201
		ws := make([]store.RecordWrite, n)
		for i := range ws {
			ws[i] = store.RecordWrite{ResultName: "ci/results/" + prUID, UID: fmt.Sprintf("0e0e0e0e-0000-4000-8000-%012d", i), DataType: store.TypeTaskRun, Data: []byte(`{}`)}
		}
		if err := s.UpsertRecords(t.Context(), ws); err != nil {
			t.Fatal(err)
		}
		count := func(a answer) int { recs, _ := a.json["records"].([]any); return len(recs) }
		all := c.do("GET", base+recordsPath("ci", "-")+"?page_size=10000", "")
		if all.status != 200 || count(all) != n || all.json["next_page_token"] != nil {
			t.Errorf("page_size=10000: %d records, token %v", count(all), all.json["next_page_token"])
		}
		first := c.do("GET", base+recordsPath("ci", prUID)+"?page_size=1100&order_by=create_time+asc", "")
		token, _ := first.json["next_page_token"].(string)
		if count(first) != 1100 || token == "" {
			t.Fatalf("first page: %d records, token %q", count(first), token)
		}
		rest := c.do("GET", base+recordsPath("ci", prUID)+"?page_size=1100&order_by=create_time+asc&page_token="+url.QueryEscape(token), "")
		if count(rest) != n-1100 || rest.json["next_page_token"] != nil {
			t.Errorf("second page: %d records, token %v", count(rest), rest.json["next_page_token"])
		}
		seen := map[string]bool{}
		for _, a := range []answer{first, rest} {
			for _, r := range a.json["records"].([]any) {
				seen[r.(map[string]any)["name"].(string)] = true
			}
		}
		if len(seen) != n {
			t.Errorf("%d distinct records over both pages, want %d", len(seen), n)
		}
	})
}

// TestSummaryStatus: a Result's summary status follows its run's Succeeded
// condition as upstream's watcher sets it, TIMEOUT included.
func TestSummaryStatus(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		c := newClient(t, s)
		for i, tt := range []struct{ status, reason, want string }{
			{"True", "Succeeded", "SUCCESS"},
			{"True", "Completed", "SUCCESS"},
			{"False", "Failed", "FAILURE"},
			{"False", "PipelineRunTimeout", "TIMEOUT"},
			{"False", "Cancelled", "CANCELLED"},
			{"Unknown", "Running", ""}, // UNKNOWN, left out
		} {
			uid := fmt.Sprintf("0f0f0f0f-0000-4000-8000-%012d", i)
			run := fmt.Sprintf(`{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"r%d","namespace":"ci","uid":"%s"},"status":{"conditions":[{"type":"Succeeded","status":"%s","reason":"%s"}]}}`, i, uid, tt.status, tt.reason)
			if err := s.UpsertRecords(t.Context(), []store.RecordWrite{{ResultName: "ci/results/" + uid, UID: uid, DataType: store.TypePipelineRun, Data: []byte(run), UpdateSummary: true}}); err != nil {
				t.Fatal(err)
			}
			a := c.do("GET", base+"parents/ci/results/"+uid, "")
			a.ok(t, &pb.Result{})
			summary, _ := a.json["summary"].(map[string]any)
			if got, _ := summary["status"].(string); got != tt.want {
				t.Errorf("reason %s: status %q, want %q (%s)", tt.reason, got, tt.want, a.body)
			}
			list := c.do("GET", base+"parents/ci/results?filter="+url.QueryEscape(`uid == "`+uid+`"`), "")
			if got := list.json["results"].([]any)[0].(map[string]any)["summary"].(map[string]any)["status"]; got != nil && got != tt.want || got == nil && tt.want != "" {
				t.Errorf("listed with reason %s: status %v, want %q", tt.reason, got, tt.want)
			}
		}
	})
}
