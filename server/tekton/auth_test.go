package tekton_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// Results and Records of two teams, ci and prod.
var (
	ciResult   = "ci/results/0c0c0c0c-0000-4000-8000-000000000001"
	prodResult = "prod/results/0c0c0c0c-0000-4000-8000-000000000002"
	trAuthUID  = "0c0c0c0c-0000-4000-8000-0000000000b1"
)

// tokens creates a ServiceAccount per caller, bound to a ClusterRole with
// Tekton Results' resource names (in a namespace, cluster-wide with "", or
// not at all with "-"), and returns their bearer tokens.
func tokens(t *testing.T, env *kubetest.Env) map[string]string {
	t.Helper()
	ctx := context.Background()
	kube := env.Kube
	rule := func(resources []string, verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{auth.Group}, Resources: resources, Verbs: verbs}
	}
	roles := map[string][]rbacv1.PolicyRule{
		"tekton-readonly":   {rule([]string{"results", "records", "logs"}, "get", "list")},
		"tekton-admin":      {rule([]string{"results", "records", "logs"}, "get", "list", "create", "update", "delete")},
		"tekton-record-get": {rule([]string{"records"}, "get")},
		"tekton-impersonate-alice": {{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"},
			ResourceNames: []string{"system:serviceaccount:ci:alice"}}},
	}
	for name, rules := range roles {
		_, err := kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	callers := map[string][2]string{ // role, where bound
		"alice": {"tekton-readonly", "ci"},
		"bob":   {"tekton-admin", "prod"},
		"carol": {"", "-"},
		"frank": {"tekton-record-get", "ci"},
		"admin": {"tekton-readonly", ""},
		"imp":   {"tekton-impersonate-alice", ""},
	}
	for _, ns := range []string{"ci", "prod"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	for name, c := range callers {
		if _, err := kube.CoreV1().ServiceAccounts("ci").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "ci"}}
		ref := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: c[0]}
		var err error
		switch c[1] {
		case "-":
		case "":
			_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tekton-" + name}, Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
		default:
			_, err = kube.RbacV1().RoleBindings(c[1]).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tekton-" + name}, Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		tok, err := kube.CoreV1().ServiceAccounts("ci").CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out[name] = tok.Status.Token
	}
	return out
}

func TestAuthorizationPerVerb(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	for _, name := range []string{ciResult, prodResult} {
		ns, uid, _ := store.ParseResultName(name)
		if _, err := s.CreateResult(ctx, ns, uid, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: name, UID: uid, DataType: store.TypePipelineRun, Data: []byte(`{"metadata":{"name":"r"}}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// A TaskRun with a step log in each namespace (the log's text is JSON,
	// so that the test client reads it as it reads every answer), and a
	// second log in prod to upload to.
	logOf := func(result, logUID string) string {
		tr := result + "/records/" + trAuthUID
		run, err := s.GetRecord(ctx, tr)
		if err != nil {
			ns, _, _ := store.ParseResultName(result)
			if run, err = s.CreateRecord(ctx, store.RecordWrite{ResultName: result, UID: trAuthUID, DataType: store.TypeTaskRun,
				Data: []byte(`{"metadata":{"name":"t","namespace":"` + ns + `"},"status":{"steps":[{"name":"s"}]}}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: logUID, TaskRun: run, Step: "s"}, strings.NewReader("{}"), 0); err != nil {
			t.Fatal(err)
		}
		return result + "/logs/" + logUID
	}
	ciLog := logOf(ciResult, "0c0c0c0c-0000-4000-8000-0000000000a1")
	prodLog := logOf(prodResult, "0c0c0c0c-0000-4000-8000-0000000000a2")
	prodUpload := logOf(prodResult, "0c0c0c0c-0000-4000-8000-0000000000a3")
	restOf := func(name string) string { return "parents/" + name }

	tok := tokens(t, env)
	ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet, Auth: auth.NewKubernetes(env.Kube, auth.Options{CacheTTL: time.Second})}))
	t.Cleanup(ts.Close)

	missingCI := "ci/results/0c0c0c0c-0000-4000-8000-0000000000ff"
	missingProd := "prod/results/0c0c0c0c-0000-4000-8000-0000000000ff"
	const newCI = "0c0c0c0c-0000-4000-8000-000000000011"
	const newProd = "0c0c0c0c-0000-4000-8000-000000000012"
	tests := []struct {
		name, caller, method, path, body string
		header                           http.Header
		status                           int
		names                            []string // for lists: exactly these
	}{
		{"no token", "", "GET", "parents/ci/results/" + uidOf(ciResult), "", nil, 401, nil},
		{"bad token", "bogus", "GET", "parents/ci/results/" + uidOf(ciResult), "", nil, 401, nil},
		{"results get allowed", "alice", "GET", "parents/ci/results/" + uidOf(ciResult), "", nil, 200, nil},
		{"results get denied", "alice", "GET", "parents/prod/results/" + uidOf(prodResult), "", nil, 401, nil},
		{"decided before lookup: missing where allowed", "alice", "GET", "parents/ci/results/" + uidOf(missingCI), "", nil, 404, nil},
		{"decided before lookup: missing where denied", "alice", "GET", "parents/prod/results/" + uidOf(missingProd), "", nil, 401, nil},
		{"results list allowed", "alice", "GET", "parents/ci/results", "", nil, 200, []string{ciResult}},
		{"results list denied", "carol", "GET", "parents/ci/results", "", nil, 401, nil},
		{"results list - visible namespaces only", "alice", "GET", "parents/-/results", "", nil, 200, []string{ciResult}},
		{"results list - cluster-wide", "admin", "GET", "parents/-/results?order_by=create_time+asc", "", nil, 200, []string{ciResult, prodResult}},
		{"results list - nothing visible", "carol", "GET", "parents/-/results", "", nil, 200, nil},
		{"results create denied", "alice", "POST", "parents/ci/results", `{"name":"ci/results/` + newCI + `"}`, nil, 401, nil},
		{"results create allowed", "bob", "POST", "parents/prod/results", `{"name":"prod/results/` + newProd + `"}`, nil, 200, nil},
		{"results update denied", "alice", "PATCH", "parents/ci/results/" + uidOf(ciResult), `{}`, nil, 401, nil},
		{"results update allowed", "bob", "PATCH", "parents/prod/results/" + newProd, `{}`, nil, 200, nil},
		{"results delete denied", "alice", "DELETE", "parents/ci/results/" + uidOf(ciResult), "", nil, 401, nil},
		{"records create denied", "alice", "POST", "parents/ci/results/" + uidOf(ciResult) + "/records",
			`{"name":"` + ciResult + `/records/` + newCI + `","data":{"type":"x","value":"e30="}}`, nil, 401, nil},
		{"records create allowed", "bob", "POST", "parents/prod/results/" + newProd + "/records",
			`{"name":"prod/results/` + newProd + `/records/` + newProd + `","data":{"type":"x","value":"e30="}}`, nil, 200, nil},
		{"records get allowed", "frank", "GET", "parents/ci/results/" + uidOf(ciResult) + "/records/" + uidOf(ciResult), "", nil, 200, nil},
		{"records get denied", "frank", "GET", "parents/prod/results/" + uidOf(prodResult) + "/records/" + uidOf(prodResult), "", nil, 401, nil},
		{"records list denied without list", "frank", "GET", "parents/ci/results/-/records", "", nil, 401, nil},
		{"records list - visible namespaces only", "alice", "GET", "parents/-/results/-/records?filter=data_type+%3D%3D+PIPELINE_RUN", "", nil, 200, []string{ciResult + "/records/" + uidOf(ciResult)}},
		{"records update denied", "alice", "PATCH", "parents/ci/results/" + uidOf(ciResult) + "/records/" + uidOf(ciResult), `{}`, nil, 401, nil},
		{"records update allowed", "bob", "PATCH", "parents/prod/results/" + newProd + "/records/" + newProd, `{}`, nil, 200, nil},
		{"records delete denied", "alice", "DELETE", "parents/ci/results/" + uidOf(ciResult) + "/records/" + uidOf(ciResult), "", nil, 401, nil},
		{"records delete allowed", "bob", "DELETE", "parents/prod/results/" + newProd + "/records/" + newProd, "", nil, 200, nil},
		{"results delete allowed", "bob", "DELETE", "parents/prod/results/" + newProd, "", nil, 200, nil},
		// The summary needs records/get, not list (B21).
		{"summary allowed with records get", "frank", "GET", "parents/ci/results/-/records/summary?summary=total", "", nil, 200, nil},
		{"summary - needs get where it looks", "frank", "GET", "parents/-/results/-/records/summary", "", nil, 200, nil},
		{"logs get allowed, by TaskRun uid", "alice", "GET", "parents/ci/results/" + uidOf(ciResult) + "/logs/" + trAuthUID, "", nil, 200, nil},
		{"logs get allowed, by Log id", "alice", "GET", restOf(ciLog), "", nil, 200, nil},
		{"logs get denied", "alice", "GET", restOf(prodLog), "", nil, 401, nil},
		{"logs get denied with records get only", "frank", "GET", restOf(ciLog), "", nil, 401, nil},
		{"logs list allowed", "alice", "GET", "parents/ci/results/-/logs", "", nil, 200, []string{ciLog}},
		{"logs list - visible namespaces only", "alice", "GET", "parents/-/results/-/logs", "", nil, 200, []string{ciLog}},
		{"logs list denied", "frank", "GET", "parents/ci/results/-/logs", "", nil, 401, nil},
		{"logs delete denied", "alice", "DELETE", restOf(ciLog), "", nil, 401, nil},
		{"logs delete allowed", "bob", "DELETE", restOf(prodLog), "", nil, 200, nil},
		{"summary denied", "carol", "GET", "parents/ci/results/-/records/summary?summary=total", "", nil, 401, nil},
		{"impersonation allowed", "imp", "GET", "parents/ci/results/" + uidOf(ciResult), "", http.Header{"Impersonate-User": {"system:serviceaccount:ci:alice"}}, 200, nil},
		{"impersonated identity is checked", "imp", "GET", "parents/prod/results/" + uidOf(prodResult), "", http.Header{"Impersonate-User": {"system:serviceaccount:ci:alice"}}, 401, nil},
		{"impersonation not allowed", "imp", "GET", "parents/ci/results/" + uidOf(ciResult), "", http.Header{"Impersonate-User": {"system:serviceaccount:ci:admin"}}, 401, nil},
		{"no rights of its own", "imp", "GET", "parents/ci/results/" + uidOf(ciResult), "", nil, 401, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client{t: t, url: ts.URL, header: http.Header{}}
			if tt.caller != "" {
				token := tok[tt.caller]
				if token == "" {
					token = "not-a-token"
				}
				c.header.Set("Authorization", "Bearer "+token)
			}
			for k, v := range tt.header {
				c.header[k] = v
			}
			a := c.do(tt.method, base+tt.path, tt.body)
			if a.status != tt.status {
				t.Fatalf("%s %s as %s: %d %s; want %d", tt.method, tt.path, tt.caller, a.status, a.body, tt.status)
			}
			if a.status == 401 {
				if streamed, ok := a.json["error"].(map[string]any); ok {
					a.json = streamed // GetLog's errors come as a stream's, as upstream's
				}
				a.failed(t, 401, 16, "")
				if a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if tt.caller == "" && !strings.Contains(string(a.body), "unable to find token") {
					t.Errorf("no token: %s", a.body)
				}
			}
			if tt.names != nil || (a.status == 200 && tt.method == "GET" && strings.HasSuffix(strings.Split(tt.path, "?")[0], "s")) {
				var out struct {
					Results []struct{ Name string }
					Records []struct{ Name string }
				}
				json.Unmarshal(a.body, &out)
				var got []string
				for _, r := range out.Results {
					got = append(got, r.Name)
				}
				for _, r := range out.Records {
					got = append(got, r.Name)
				}
				if !slices.Equal(got, tt.names) {
					t.Errorf("listed %v, want %v", got, tt.names)
				}
			}
		})
	}

	// gRPC: the same checks, with the token and impersonation in metadata.
	rpc := pb.NewResultsClient(dial(t, ts))
	as := func(caller string, kv ...string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer " + tok[caller]}, kv...)...)
	}
	if _, err := rpc.GetResult(as("alice"), &pb.GetResultRequest{Name: ciResult}); err != nil {
		t.Errorf("gRPC get allowed: %v", err)
	}
	_, err := rpc.GetResult(ctx, &pb.GetResultRequest{Name: ciResult})
	wantCode(t, err, codes.Unauthenticated, "unable to find token")
	_, err = rpc.GetResult(as("alice"), &pb.GetResultRequest{Name: prodResult})
	wantCode(t, err, codes.Unauthenticated, "permission denied")
	_, err = rpc.DeleteRecord(as("alice"), &pb.DeleteRecordRequest{Name: ciResult + "/records/" + uidOf(ciResult)})
	wantCode(t, err, codes.Unauthenticated, "permission denied")
	if _, err := rpc.GetResult(as("imp", "impersonate-user", "system:serviceaccount:ci:alice"), &pb.GetResultRequest{Name: ciResult}); err != nil {
		t.Errorf("gRPC impersonation: %v", err)
	}
	// Logs over gRPC: get, and upload with logs/update.
	logs := pb.NewLogsClient(dial(t, ts))
	upload := func(caller, name string) error {
		stream, err := logs.UpdateLog(as(caller))
		if err != nil {
			return err
		}
		stream.Send(&pb.Log{Name: name, Data: []byte("uploaded")})
		_, err = stream.CloseAndRecv()
		return err
	}
	wantCode(t, upload("alice", ciLog), codes.Unauthenticated, "permission denied")
	wantCode(t, upload("frank", ciLog), codes.Unauthenticated, "permission denied")
	if err := upload("bob", prodUpload); err != nil {
		t.Errorf("gRPC UpdateLog allowed: %v", err)
	}
	get, err := logs.GetLog(as("frank"), &pb.GetLogRequest{Name: ciLog})
	if err == nil {
		_, err = get.Recv()
	}
	wantCode(t, err, codes.Unauthenticated, "permission denied")
	get, err = logs.GetLog(as("bob"), &pb.GetLogRequest{Name: prodUpload})
	if err == nil {
		var m *httpbody.HttpBody
		if m, err = get.Recv(); err == nil && string(m.GetData()) != "uploaded" {
			t.Errorf("gRPC GetLog after upload: %q", m.GetData())
		}
	}
	if err != nil {
		t.Errorf("gRPC GetLog allowed: %v", err)
	}

	list, err := rpc.ListRecords(as("alice"), &pb.ListRecordsRequest{Parent: "-/results/-", Filter: "data_type == PIPELINE_RUN"})
	if err != nil || len(list.Records) != 1 || list.Records[0].Name != ciResult+"/records/"+uidOf(ciResult) {
		t.Errorf("gRPC list across namespaces: %v %v", list, err)
	}
}

func uidOf(name string) string { return name[strings.LastIndex(name, "/")+1:] }
