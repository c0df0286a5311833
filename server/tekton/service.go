package tekton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/annals-dev/annals/server/access"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// Service implements tekton.results.v1alpha2.Results on the store. Every
// RPC decides access first (package access, Tekton Results' resource and
// verb), then validates and calls the store.
type Service struct {
	pb.UnimplementedResultsServer

	Store     *store.Store
	Access    access.Decider
	Logger    *slog.Logger
	RequestID func(context.Context) string // names a failure in the log and in the answer
}

// CreateResult creates an empty Result; its summary and annotations, when
// given, are stored with it.
func (s *Service) CreateResult(ctx context.Context, req *pb.CreateResultRequest) (*pb.Result, error) {
	if err := accessError(s.Access.Allow(ctx, req.GetParent(), access.Results, access.Create)); err != nil {
		return nil, err
	}
	in := req.GetResult()
	parent, id, err := parseResultName(in.GetName())
	if err != nil {
		return nil, err
	}
	if parent != req.GetParent() {
		return nil, invalidf("requested parent does not match resource name")
	}
	res, err := s.Store.CreateResult(ctx, parent, id, in.GetAnnotations())
	if err != nil {
		return nil, s.storeError(ctx, err, codes.AlreadyExists)
	}
	if sum := summaryOf(in.GetSummary()); sum != nil {
		if res, err = s.Store.ReplaceResult(ctx, res.Name, res.Etag(), in.GetAnnotations(), sum); err != nil {
			return nil, s.storeError(ctx, err, codes.FailedPrecondition)
		}
	}
	return s.withAnnotations(ctx, res)
}

// GetResult returns one Result.
func (s *Service) GetResult(ctx context.Context, req *pb.GetResultRequest) (*pb.Result, error) {
	res, err := s.result(ctx, req.GetName(), access.Get)
	if err != nil {
		return nil, err
	}
	return s.withAnnotations(ctx, res)
}

// UpdateResult replaces the annotations and the summary of a Result with
// the request's (absent means cleared), as Tekton Results does. It acts on
// the request's name, not on result.name.
func (s *Service) UpdateResult(ctx context.Context, req *pb.UpdateResultRequest) (*pb.Result, error) {
	cur, err := s.result(ctx, req.GetName(), access.Update)
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != etag(cur.UID, cur.UpdatedAt) {
		return nil, status.Errorf(codes.FailedPrecondition, "the etag mismatches: %q is not the current etag of %s: read it again", req.GetEtag(), cur.Name)
	}
	in := req.GetResult()
	res, err := s.Store.ReplaceResult(ctx, cur.Name, cur.Etag(), in.GetAnnotations(), summaryOf(in.GetSummary()))
	if err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return s.withAnnotations(ctx, res)
}

// DeleteResult deletes a Result with its Records.
func (s *Service) DeleteResult(ctx context.Context, req *pb.DeleteResultRequest) (*emptypb.Empty, error) {
	cur, err := s.result(ctx, req.GetName(), access.Delete)
	if err != nil {
		return nil, err
	}
	if err := s.Store.DeleteResult(ctx, cur.Name, ""); err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return &emptypb.Empty{}, nil
}

// result validates a Result name, decides access, then looks it up.
func (s *Service) result(ctx context.Context, name, verb string) (*store.Result, error) {
	parent, _, err := parseResultName(name)
	if err != nil {
		return nil, err
	}
	if err := accessError(s.Access.Allow(ctx, parent, access.Results, verb)); err != nil {
		return nil, err
	}
	res, err := s.Store.GetResult(ctx, name)
	if errors.Is(err, store.ErrInvalidArgument) {
		// A name Tekton Results accepts but Annals could never have stored.
		return nil, status.Error(codes.NotFound, notFound)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return res, nil
}

func (s *Service) withAnnotations(ctx context.Context, res *store.Result) (*pb.Result, error) {
	out, err := s.resultsProto(ctx, []*store.Result{res})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// resultsProto converts Results with their annotations and the reasons of
// their failed summary runs, in two statements whatever their number.
func (s *Service) resultsProto(ctx context.Context, results []*store.Result) ([]*pb.Result, error) {
	keys := make([]store.Key, len(results))
	var failed []string
	for i, r := range results {
		keys[i] = r.Key()
		if r.SummaryStatus == store.StatusFailed && r.SummaryRecord != "" {
			failed = append(failed, r.SummaryRecord)
		}
	}
	annotations, err := s.Store.AnnotationsByResult(ctx, keys)
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	reasons, err := s.Store.RecordReasons(ctx, failed)
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	out := make([]*pb.Result, len(results))
	for i, r := range results {
		out[i] = resultProto(r, annotations[r.Key()], reasons)
	}
	return out, nil
}

// ListResults lists the Results of a parent, or of every parent the caller
// may list with "-".
func (s *Service) ListResults(ctx context.Context, req *pb.ListResultsRequest) (*pb.ListResultsResponse, error) {
	parent := req.GetParent()
	if parent != "-" && store.CheckNamespace(parent) != nil {
		return &pb.ListResultsResponse{}, nil // upstream does not validate the parent: nothing is there (B15)
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	order, err := orderBy(req.GetOrderBy(), resultOrders)
	if err != nil {
		return nil, err
	}
	visible, err := s.Access.ListScope(ctx, parent, access.Results, access.List)
	if err := accessError(err); err != nil {
		return nil, err
	}
	opts := store.ListOptions{Parent: parent, Namespaces: visible, Filter: req.GetFilter(), FilterFlavor: filter.Tekton, OrderBy: order}
	items, next, err := collect(ctx, size, req.GetPageToken(), func(ctx context.Context, first int, after string) (*store.Page[*store.Result], error) {
		o := opts
		o.First, o.After = first, after
		return s.Store.ListResults(ctx, o)
	})
	if err != nil {
		return nil, s.listError(ctx, err, req.GetPageToken())
	}
	results, err := s.resultsProto(ctx, items)
	if err != nil {
		return nil, err
	}
	return &pb.ListResultsResponse{Results: results, NextPageToken: next}, nil
}

// CreateRecord creates a Record under an existing Result. The answer echoes
// the data as given (B18).
func (s *Service) CreateRecord(ctx context.Context, req *pb.CreateRecordRequest) (*pb.Record, error) {
	parentNS, _, _ := strings.Cut(req.GetParent(), "/")
	if err := accessError(s.Access.Allow(ctx, parentNS, access.Records, access.Create)); err != nil {
		return nil, err
	}
	in := req.GetRecord()
	ns, result, id, err := parseRecordName(in.GetName())
	if err != nil {
		return nil, err
	}
	if store.ResultName(ns, result) != req.GetParent() {
		return nil, invalidf("requested parent does not match resource name")
	}
	if err := checkData(in.GetData()); err != nil {
		return nil, err
	}
	rec, err := s.Store.CreateRecord(ctx, store.RecordWrite{ResultName: req.GetParent(), UID: id, DataType: in.GetData().GetType(), Data: in.GetData().GetValue()})
	if err != nil {
		return nil, s.storeError(ctx, err, codes.AlreadyExists)
	}
	out := recordProto(rec)
	out.Data.Value = in.GetData().GetValue()
	return out, nil
}

// checkData refuses data Tekton Results refuses: it must have a type and
// hold JSON.
func checkData(d *pb.Any) error {
	if d.GetType() == "" {
		return invalidf("data.type is required, e.g. %q", store.TypeTaskRun)
	}
	var v any
	if err := json.Unmarshal(d.GetValue(), &v); err != nil {
		return invalidf("%v", err)
	}
	return nil
}

// GetRecord returns one Record.
func (s *Service) GetRecord(ctx context.Context, req *pb.GetRecordRequest) (*pb.Record, error) {
	rec, err := s.record(ctx, req.GetName(), access.Get)
	if err != nil {
		return nil, err
	}
	return recordProto(rec), nil
}

// UpdateRecord merges the request into the stored Record: new data replaces
// the old. update_mask is ignored, as upstream does.
func (s *Service) UpdateRecord(ctx context.Context, req *pb.UpdateRecordRequest) (*pb.Record, error) {
	in := req.GetRecord()
	cur, err := s.record(ctx, in.GetName(), access.Update)
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != etag(cur.UID, cur.UpdatedAt) {
		return nil, status.Errorf(codes.FailedPrecondition, "the etag mismatches: %q is not the current etag of %s: read it again", req.GetEtag(), cur.Name)
	}
	data := []byte(cur.Data)
	if in.GetData() != nil {
		if err := checkData(in.GetData()); err != nil {
			return nil, err
		}
		if in.GetData().GetType() != cur.DataType {
			return nil, invalidf("data.type cannot change from %q to %q: create a new record instead", cur.DataType, in.GetData().GetType())
		}
		data = in.GetData().GetValue()
	}
	rec, err := s.Store.UpdateRecord(ctx, cur.Name, data, cur.Etag())
	if err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	out := recordProto(rec)
	out.Data.Value = data
	return out, nil
}

// DeleteRecord deletes one Record.
func (s *Service) DeleteRecord(ctx context.Context, req *pb.DeleteRecordRequest) (*emptypb.Empty, error) {
	cur, err := s.record(ctx, req.GetName(), access.Delete)
	if err != nil {
		return nil, err
	}
	if err := s.Store.DeleteRecord(ctx, cur.Name, ""); err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return &emptypb.Empty{}, nil
}

// record validates a Record name, decides access, then looks it up.
func (s *Service) record(ctx context.Context, name, verb string) (*store.Record, error) {
	parent, _, _, err := parseRecordName(name)
	if err != nil {
		return nil, err
	}
	if err := accessError(s.Access.Allow(ctx, parent, access.Records, verb)); err != nil {
		return nil, err
	}
	rec, err := s.Store.GetRecord(ctx, name)
	if errors.Is(err, store.ErrInvalidArgument) {
		return nil, status.Error(codes.NotFound, notFound)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return rec, nil
}

// ListRecords lists Records under "<parent>/results/<result>", where
// either part may be "-".
func (s *Service) ListRecords(ctx context.Context, req *pb.ListRecordsRequest) (*pb.ListRecordsResponse, error) {
	items, next, err := s.listRecordItems(ctx, req, req.GetFilter(), recordOrders, access.Records)
	if err != nil {
		return nil, err
	}
	out := &pb.ListRecordsResponse{NextPageToken: next}
	for _, r := range items {
		out.Records = append(out.Records, recordProto(r))
	}
	return out, nil
}

// errNothing says a list cannot hold anything: its parent is one that
// Tekton Results accepts but Annals could never have stored.
var errNothing = errors.New("nothing can be there")

// recordList validates a list of Records and decides access to it (records
// list, records get for the summary, logs list for ListLogs): the store options, and the page size.
// listRecordItems reads the page of Records a ListRecords-shaped request
// asks for (scope, celFilter, order, size, token), in as many store pages as
// its size needs, checking list on resource; a scope where nothing can be
// is an empty page.
func (s *Service) listRecordItems(ctx context.Context, req *pb.ListRecordsRequest, celFilter string, orders map[string]store.OrderField, resource string) ([]*store.Record, string, error) {
	opts, size, err := s.recordList(ctx, req.GetParent(), celFilter, req.GetPageSize(), req.GetOrderBy(), orders, access.List, resource)
	if errors.Is(err, errNothing) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	items, next, err := collect(ctx, size, req.GetPageToken(), func(ctx context.Context, first int, after string) (*store.Page[*store.Record], error) {
		o := opts
		o.First, o.After = first, after
		return s.Store.ListRecords(ctx, o)
	})
	if err != nil {
		return nil, "", s.listError(ctx, err, req.GetPageToken())
	}
	return items, next, nil
}

func (s *Service) recordList(ctx context.Context, parent, celFilter string, size int32, order string, orders map[string]store.OrderField, verb, resource string) (store.ListOptions, int, error) {
	ns, result, err := parseRecordParent(parent)
	if err != nil {
		return store.ListOptions{}, 0, err
	}
	n, err := pageSize(size)
	if err != nil {
		return store.ListOptions{}, 0, err
	}
	ob, err := orderBy(order, orders)
	if err != nil {
		return store.ListOptions{}, 0, err
	}
	visible, err := s.Access.ListScope(ctx, ns, resource, verb)
	if err := accessError(err); err != nil {
		return store.ListOptions{}, 0, err
	}
	if ns != "-" && store.CheckNamespace(ns) != nil {
		return store.ListOptions{}, 0, errNothing
	}
	opts := store.ListOptions{Parent: ns, Namespaces: visible, Filter: celFilter, FilterFlavor: filter.Tekton, OrderBy: ob}
	switch {
	case result == "-":
	case ns != "-":
		opts.ResultName = store.ResultName(ns, result)
		if _, _, err := store.ParseResultName(opts.ResultName); err != nil {
			return store.ListOptions{}, 0, errNothing // a name Annals could never have stored
		}
	default:
		// One result id under any parent. The id matched [a-z0-9_-], so
		// it is safe inside a CEL string, which the store binds anyway.
		cond := `result_name == "` + result + `"`
		if strings.TrimSpace(celFilter) != "" {
			cond = "(" + celFilter + ") && " + cond
		}
		opts.Filter = cond
	}
	return opts, n, nil
}

// GetRecordListSummary aggregates the Records of a list scope (the same
// parent, result and CEL filter as ListRecords, "-" restricted to the
// namespaces the caller may see) with the Summary engine of the store. It
// needs records/get where they are (B21). A missing summary is "total" (B3)
// and order_by takes "ASC key" too (B10).
func (s *Service) GetRecordListSummary(ctx context.Context, req *pb.RecordListSummaryRequest) (*pb.RecordListSummary, error) {
	opts, _, err := s.recordList(ctx, req.GetParent(), req.GetFilter(), 0, "", recordOrders, access.Get, access.Records)
	nothing := errors.Is(err, errNothing)
	if err != nil && !nothing {
		return nil, err
	}
	sum := store.SummaryOptions{Parent: opts.Parent, Namespaces: opts.Namespaces, ResultName: opts.ResultName,
		Filter: opts.Filter, FilterFlavor: opts.FilterFlavor, Summary: req.GetSummary(), GroupBy: req.GetGroupBy(), OrderBy: req.GetOrderBy()}
	if nothing {
		// Nothing can match, but the request is still validated and
		// answers its empty shape: select no namespace at all.
		sum = store.SummaryOptions{Parent: "-", Namespaces: []string{}, Summary: req.GetSummary(), GroupBy: req.GetGroupBy(), OrderBy: req.GetOrderBy()}
	}
	rows, err := s.Store.SummarizeRecords(ctx, sum)
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	out := &pb.RecordListSummary{}
	for _, row := range rows {
		st, err := structpb.NewStruct(row)
		if err != nil {
			return nil, s.storeError(ctx, fmt.Errorf("summary row %v: %w", row, err), codes.Internal)
		}
		out.Summary = append(out.Summary, st)
	}
	return out, nil
}

// listError says plainly when a page token is to blame (B11: 400, not
// upstream's 500).
func (s *Service) listError(ctx context.Context, err error, token string) error {
	if token != "" && errors.Is(err, store.ErrInvalidArgument) && strings.Contains(err.Error(), "cursor") {
		return invalidf("invalid page token: this server did not issue it for this request; send back a next_page_token unchanged, with the same parent, filter and order_by, or start without page_token")
	}
	return s.storeError(ctx, err, codes.Internal)
}
