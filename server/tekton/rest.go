package tekton

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
)

// RESTPrefix is where the REST mapping is mounted.
const RESTPrefix = "/apis/results.tekton.dev/v1alpha2/"

// maxBody bounds REST request bodies (a Record with a large run).
const maxBody = 16 << 20

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// REST serves Tekton Results' REST API under RESTPrefix, as grpc-gateway
// maps it onto the gRPC service: each request becomes the RPC's request
// message and goes through the same interceptor and handler as gRPC.
func (s *Server) REST() http.Handler { return http.HandlerFunc(s.serveREST) }

// route is one REST endpoint: the RPC to call with a request message read
// from the path, the query and the body.
type route struct {
	method string
	call   func(ctx context.Context, r *http.Request) (proto.Message, error)
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	path := strings.Split(strings.TrimPrefix(r.URL.Path, RESTPrefix), "/")
	routes := s.routes(path)
	if len(routes) == 0 {
		writeError(w, status.Error(codes.NotFound, "Not Found"))
		return
	}
	for _, rt := range routes {
		if rt.method != r.Method {
			continue
		}
		ctx := restContext(r)
		if isGetLog(path) && r.Method == http.MethodGet {
			s.streamLog(ctx, w, path)
			return
		}
		resp, err := rt.call(ctx, r)
		if err != nil {
			writeError(w, err)
			return
		}
		body, err := marshal.Marshal(resp)
		if err != nil {
			writeError(w, status.Errorf(codes.Internal, "encoding the answer: %v", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	writeError(w, status.Error(codes.Unimplemented, "Method Not Allowed"))
}

func isGetLog(path []string) bool { return len(path) == 6 && path[4] == "logs" }

// restContext carries what gRPC calls carry in metadata: credentials,
// impersonation, Grpc-Metadata-<k> headers, ?fields=, and the TLS state.
func restContext(r *http.Request) context.Context {
	md := metadata.MD{}
	for key, values := range r.Header {
		lower := strings.ToLower(key)
		switch {
		case lower == "authorization" || strings.HasPrefix(lower, "impersonate-"):
			md.Append(lower, values...)
		case strings.HasPrefix(lower, "grpc-metadata-"):
			md.Append(strings.TrimPrefix(lower, "grpc-metadata-"), values...)
		}
	}
	if fields := r.URL.Query()["fields"]; len(fields) > 0 {
		md.Append("fields", fields...)
	}
	ctx := metadata.NewIncomingContext(r.Context(), md)
	if r.TLS != nil {
		ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: *r.TLS}})
	}
	return ctx
}

// routes lists the endpoints of a path; none means 404.
func (s *Server) routes(p []string) []route {
	if len(p) < 3 || p[0] != "parents" || p[2] != "results" || slices.Contains(p, "") {
		return nil
	}
	parent := p[1]
	switch len(p) {
	case 3:
		return []route{
			{http.MethodPost, func(ctx context.Context, r *http.Request) (proto.Message, error) {
				in := &pb.Result{}
				if err := readBody(r, in); err != nil {
					return nil, err
				}
				return call(ctx, s, &pb.CreateResultRequest{Parent: parent, Result: in}, s.results.CreateResult)
			}},
			{http.MethodGet, func(ctx context.Context, r *http.Request) (proto.Message, error) {
				req := &pb.ListResultsRequest{Parent: parent}
				if err := listQuery(r.URL.Query(), &req.Filter, &req.PageSize, &req.PageToken, &req.OrderBy); err != nil {
					return nil, err
				}
				return call(ctx, s, req, s.results.ListResults)
			}},
		}
	case 4:
		name := parent + "/results/" + p[3]
		return []route{
			{http.MethodGet, func(ctx context.Context, _ *http.Request) (proto.Message, error) {
				return call(ctx, s, &pb.GetResultRequest{Name: name}, s.results.GetResult)
			}},
			{http.MethodPatch, func(ctx context.Context, r *http.Request) (proto.Message, error) {
				in := &pb.Result{}
				if err := readBody(r, in); err != nil {
					return nil, err
				}
				q := r.URL.Query()
				// The name comes from the path; upstream also demands it in
				// ?name= (B2), which is accepted when it agrees.
				if given := q.Get("name"); given != "" && given != name {
					return nil, invalidf("name %q in the query does not match %q in the path", given, name)
				}
				return call(ctx, s, &pb.UpdateResultRequest{Name: name, Result: in, Etag: q.Get("etag")}, s.results.UpdateResult)
			}},
			{http.MethodDelete, func(ctx context.Context, _ *http.Request) (proto.Message, error) {
				return call(ctx, s, &pb.DeleteResultRequest{Name: name}, s.results.DeleteResult)
			}},
		}
	case 5:
		recordsParent := parent + "/results/" + p[3]
		switch p[4] {
		case "records":
			return []route{
				{http.MethodPost, func(ctx context.Context, r *http.Request) (proto.Message, error) {
					in := &pb.Record{}
					if err := readBody(r, in); err != nil {
						return nil, err
					}
					return call(ctx, s, &pb.CreateRecordRequest{Parent: recordsParent, Record: in}, s.results.CreateRecord)
				}},
				{http.MethodGet, func(ctx context.Context, r *http.Request) (proto.Message, error) {
					// tkn-results sends the request as a GET body too: never read.
					req := &pb.ListRecordsRequest{Parent: recordsParent}
					if err := listQuery(r.URL.Query(), &req.Filter, &req.PageSize, &req.PageToken, &req.OrderBy); err != nil {
						return nil, err
					}
					return call(ctx, s, req, s.results.ListRecords)
				}},
			}
		case "logs":
			return []route{{http.MethodGet, func(ctx context.Context, r *http.Request) (proto.Message, error) {
				req := &pb.ListRecordsRequest{Parent: recordsParent}
				if err := listQuery(r.URL.Query(), &req.Filter, &req.PageSize, &req.PageToken, &req.OrderBy); err != nil {
					return nil, err
				}
				return call(ctx, s, req, s.logs.ListLogs)
			}}}
		}
	case 6:
		name := parent + "/results/" + p[3] + "/" + p[4] + "/" + p[5]
		switch p[4] {
		case "records":
			var rs []route
			if p[5] == "summary" { // wins over a record named summary for GET (B16)
				rs = append(rs, route{http.MethodGet, func(ctx context.Context, r *http.Request) (proto.Message, error) {
					q := r.URL.Query()
					req := &pb.RecordListSummaryRequest{Parent: parent + "/results/" + p[3], Summary: q.Get("summary"), Filter: q.Get("filter"),
						GroupBy: param(q, "group_by", "groupBy"), OrderBy: param(q, "order_by", "orderBy")}
					return call(ctx, s, req, s.results.GetRecordListSummary)
				}})
			} else {
				rs = append(rs, route{http.MethodGet, func(ctx context.Context, _ *http.Request) (proto.Message, error) {
					return call(ctx, s, &pb.GetRecordRequest{Name: name}, s.results.GetRecord)
				}})
			}
			return append(rs,
				route{http.MethodPatch, func(ctx context.Context, r *http.Request) (proto.Message, error) {
					in := &pb.Record{}
					if err := readBody(r, in); err != nil {
						return nil, err
					}
					in.Name = name
					return call(ctx, s, &pb.UpdateRecordRequest{Record: in, Etag: r.URL.Query().Get("etag")}, s.results.UpdateRecord)
				}},
				route{http.MethodDelete, func(ctx context.Context, _ *http.Request) (proto.Message, error) {
					return call(ctx, s, &pb.DeleteRecordRequest{Name: name}, s.results.DeleteRecord)
				}})
		case "logs":
			return []route{
				{http.MethodGet, nil}, // streamed: see streamLog
				{http.MethodDelete, func(ctx context.Context, _ *http.Request) (proto.Message, error) {
					return call(ctx, s, &pb.DeleteLogRequest{Name: name}, s.logs.DeleteLog)
				}},
			}
		}
	}
	return nil
}

// call runs an RPC through the interceptor every gRPC call goes through.
func call[Req, Resp proto.Message](ctx context.Context, s *Server, req Req, rpc func(context.Context, Req) (Resp, error)) (proto.Message, error) {
	resp, err := s.unary(ctx, req, nil, func(ctx context.Context, req any) (any, error) {
		return rpc(ctx, req.(Req))
	})
	if err != nil {
		return nil, err
	}
	return resp.(proto.Message), nil
}

// readBody decodes a JSON body into msg: proto or JSON field names,
// unknown fields ignored, an empty body an empty message.
func readBody(r *http.Request, msg proto.Message) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return invalidf("reading the body: %v", err)
	}
	if len(body) > maxBody {
		return invalidf("the body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := unmarshal.Unmarshal(body, msg); err != nil {
		return invalidf("%v", err)
	}
	return nil
}

// param reads a query parameter by its proto or its JSON name.
func param(q url.Values, names ...string) string {
	for _, n := range names {
		if v := q.Get(n); v != "" {
			return v
		}
	}
	return ""
}

func listQuery(q url.Values, filter *string, size *int32, token, order *string) error {
	*filter = q.Get("filter")
	*token = param(q, "page_token", "pageToken")
	*order = param(q, "order_by", "orderBy")
	for _, name := range []string{"page_size", "pageSize"} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return invalidf("parsing field %q: %v", name, err)
			}
			*size = int32(n)
			break
		}
	}
	return nil
}

// httpStatus is grpc-gateway's HTTPStatusFromCode.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers {"code":N,"message":"..."} with the HTTP status of the
// code; 401 carries the message in WWW-Authenticate, as upstream does.
func writeError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	body := map[string]any{"code": int(st.Code()), "message": st.Message()}
	if details := st.Proto().GetDetails(); len(details) > 0 {
		var out []json.RawMessage
		for _, d := range details {
			if b, err := protojson.Marshal(d); err == nil {
				out = append(out, b)
			}
		}
		body["details"] = out
	}
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", st.Message())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(st.Code()))
	b, _ := json.Marshal(body)
	w.Write(b)
}

// streamLog serves GetLog over REST: the log's bytes as they come, and one
// newline at the end (B1). An error before the first byte is answered as
// upstream's stream error; after it, the connection is cut, so that no
// JSON is ever appended to a log (B22).
func (s *Server) streamLog(ctx context.Context, w http.ResponseWriter, path []string) {
	name := path[1] + "/results/" + path[3] + "/logs/" + path[5]
	out := &restLogStream{ctx: ctx, w: w}
	err := s.stream(s.logs, out, &grpc.StreamServerInfo{FullMethod: pb.Logs_GetLog_FullMethodName, IsServerStream: true}, func(srv any, ss grpc.ServerStream) error {
		return s.logs.GetLog(&pb.GetLogRequest{Name: name}, &typedLogStream{ServerStream: ss, out: out})
	})
	switch {
	case err != nil && !out.started:
		st := status.Convert(err)
		if st.Code() == codes.Unauthenticated {
			w.Header().Set("WWW-Authenticate", st.Message())
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(httpStatus(st.Code()))
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": int(st.Code()), "message": st.Message()}})
		w.Write(append(b, '\n'))
	case err != nil:
		panic(http.ErrAbortHandler)
	case out.started:
		w.Write([]byte("\n"))
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
	}
}

// restLogStream is the server stream of a REST GetLog: messages go to the
// HTTP response.
type restLogStream struct {
	grpc.ServerStream
	ctx     context.Context
	w       http.ResponseWriter
	started bool
}

func (s *restLogStream) Context() context.Context     { return s.ctx }
func (s *restLogStream) SetHeader(metadata.MD) error  { return nil }
func (s *restLogStream) SendHeader(metadata.MD) error { return nil }
func (s *restLogStream) SetTrailer(metadata.MD)       {}
func (s *restLogStream) RecvMsg(any) error            { return io.EOF }

func (s *restLogStream) SendMsg(m any) error {
	body, ok := m.(*httpbody.HttpBody)
	if !ok {
		return fmt.Errorf("unexpected log message %T", m)
	}
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/json") // as upstream (B13)
		s.w.WriteHeader(http.StatusOK)
	}
	if _, err := s.w.Write(body.GetData()); err != nil {
		return err
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// typedLogStream gives GetLog its typed stream over any ServerStream.
type typedLogStream struct {
	grpc.ServerStream
	out *restLogStream
}

func (s *typedLogStream) Send(m *httpbody.HttpBody) error { return s.out.SendMsg(m) }
