package tekton

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
)

// etag is Tekton Results' etag, "<uid>-<update time in Unix nanoseconds>":
// it changes whenever update_time does.
func etag(uid string, updated time.Time) string {
	return fmt.Sprintf("%s-%d", uid, updated.UnixNano())
}

// Summary statuses. Annals files timed-out runs under FAILURE (and stores a
// TIMEOUT it is given so); answers tell them apart by the reason of the
// summary's run, as Tekton Results does.
var (
	statusToProto = map[string]pb.RecordSummary_Status{
		store.StatusSucceeded: pb.RecordSummary_SUCCESS,
		store.StatusFailed:    pb.RecordSummary_FAILURE,
		store.StatusCancelled: pb.RecordSummary_CANCELLED,
	}
	statusFromProto = map[pb.RecordSummary_Status]string{
		pb.RecordSummary_SUCCESS:   store.StatusSucceeded,
		pb.RecordSummary_FAILURE:   store.StatusFailed,
		pb.RecordSummary_TIMEOUT:   store.StatusFailed,
		pb.RecordSummary_CANCELLED: store.StatusCancelled,
	}
)

func timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// resultProto is a Result as Tekton Results writes it, the deprecated
// twins included.
func resultProto(r *store.Result, annotations []store.Annotation, reasons map[string]string) *pb.Result {
	out := &pb.Result{
		Name: r.Name, Id: r.UID, Uid: r.UID,
		CreatedTime: timestamppb.New(r.CreatedAt), CreateTime: timestamppb.New(r.CreatedAt),
		UpdatedTime: timestamppb.New(r.UpdatedAt), UpdateTime: timestamppb.New(r.UpdatedAt),
		Etag: etag(r.UID, r.UpdatedAt),
	}
	if len(annotations) > 0 {
		out.Annotations = make(map[string]string, len(annotations))
		for _, a := range annotations {
			out.Annotations[a.Key] = a.Value
		}
	}
	if r.SummaryRecord != "" {
		// The summary's annotations are not given back: Annals fills them
		// with the run's own annotations, which Tekton Results does not.
		out.Summary = &pb.RecordSummary{
			Record: r.SummaryRecord, Type: r.SummaryType,
			StartTime: timestamp(r.SummaryStartTime), EndTime: timestamp(r.SummaryEndTime),
			Status: statusToProto[r.SummaryStatus],
		}
		if r.SummaryStatus == store.StatusFailed && strings.HasSuffix(reasons[r.SummaryRecord], "Timeout") {
			out.Summary.Status = pb.RecordSummary_TIMEOUT
		}
	}
	return out
}

// recordProto is a Record as Tekton Results writes it.
func recordProto(r *store.Record) *pb.Record {
	return &pb.Record{
		Name: r.Name, Id: r.UID, Uid: r.UID,
		Data:        &pb.Any{Type: r.DataType, Value: []byte(r.Data)},
		Etag:        etag(r.UID, r.UpdatedAt),
		CreatedTime: timestamppb.New(r.CreatedAt), CreateTime: timestamppb.New(r.CreatedAt),
		UpdatedTime: timestamppb.New(r.UpdatedAt), UpdateTime: timestamppb.New(r.UpdatedAt),
	}
}

// summaryOf is the summary a client gives, nil when it names no record.
func summaryOf(s *pb.RecordSummary) *store.ResultSummary {
	if s == nil || s.GetRecord() == "" {
		return nil
	}
	st, ok := statusFromProto[s.GetStatus()]
	if !ok {
		st = store.StatusUnknown
	}
	return &store.ResultSummary{
		Record: s.GetRecord(), Type: s.GetType(), Status: st,
		StartTime: timeOf(s.GetStartTime()), EndTime: timeOf(s.GetEndTime()), Annotations: s.GetAnnotations(),
	}
}
