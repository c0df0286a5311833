package tekton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/annals-dev/annals/server/access"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	pb3 "github.com/annals-dev/annals/server/tekton/proto/v1alpha3"
	"github.com/annals-dev/annals/store"
)

// logChunk is the most bytes one HttpBody message of GetLog carries, as
// upstream's LOGS_BUFFER_SIZE.
const logChunk = 32 << 10

// Upstream's messages, which clients show as they are.
const (
	logMissing    = "Log doesn't exist"
	logMultiNames = "cannot put logs for multiple records in the same server"
)

var logNameRE = regexp.MustCompile(`^(` + segment + `)/results/(` + segment + `)/logs/(` + segment + `)$`)

// parseLogName splits "<parent>/results/<result id>/logs/<id>".
func parseLogName(name string) (parent, result, id string, err error) {
	m := logNameRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", "", invalidf("Invalid Name: a log name must match %s", logNameRE.String())
	}
	return m[1], m[2], m[3], nil
}

// logTypes are the data types of Log Records: Annals writes v1alpha3,
// an import may bring v1alpha2 ones.
var logTypes = []string{store.TypeLog, "results.tekton.dev/v1alpha2.Log"}

// LogsService implements tekton.results.v1alpha2.Logs on the store's Log
// Records, whose bytes stream chunk by chunk from the store.
type LogsService struct {
	pb.UnimplementedLogsServer
	*Service
}

// LogsV3Service is tekton.results.v1alpha3.Logs/GetLog, which tkn-results
// calls by default: served as v1alpha2's.
type LogsV3Service struct {
	pb3.UnimplementedLogsServer
	Logs *LogsService
}

// GetLog serves v1alpha3's GetLog as v1alpha2's.
func (s *LogsV3Service) GetLog(req *pb3.GetLogRequest, stream pb3.Logs_GetLogServer) error {
	return s.Logs.GetLog(&pb.GetLogRequest{Name: req.GetName()}, stream)
}

// GetLog streams a log as HttpBody chunks of at most 32 KiB. The name's id
// is a Log Record's, or (as every client addresses logs) a TaskRun's or a
// PipelineRun's uid in that Result: a TaskRun's log is its step logs in
// step order, a PipelineRun's is its TaskRuns' logs in start order. Every
// part is found and opened before the first byte is sent, so that a log
// missing or unreadable is an error status, never a 200 with a broken body.
func (s *LogsService) GetLog(req *pb.GetLogRequest, stream pb.Logs_GetLogServer) error {
	ctx := stream.Context()
	parent, result, id, err := parseLogName(req.GetName())
	if err != nil {
		return err
	}
	if err := accessError(s.Access.Allow(ctx, parent, access.Logs, access.Get)); err != nil {
		return err
	}
	logs, err := s.logsOf(ctx, store.ResultName(parent, result), id)
	if err != nil {
		return err
	}
	parts, total, err := s.open(ctx, logs)
	defer func() {
		for _, p := range parts {
			p.Close()
		}
	}()
	if err != nil {
		return err
	}
	if total == 0 {
		return status.Error(codes.NotFound, logMissing)
	}
	send := &chunkSender{stream: stream, buf: make([]byte, 0, logChunk)}
	for i, p := range parts {
		if err := send.copy(p); err != nil {
			return s.storeError(ctx, fmt.Errorf("streaming %s: %w", logs[i].Name, err), codes.Internal)
		}
		// Parts are joined line by line: a step's last line never runs
		// into the next step's first.
		if i < len(parts)-1 && send.last != '\n' && send.sent+len(send.buf) > 0 {
			if err := send.write([]byte{'\n'}); err != nil {
				return err
			}
		}
	}
	return send.flush()
}

// chunkSender cuts what it is given into messages of at most logChunk bytes.
type chunkSender struct {
	stream interface {
		Send(*httpbody.HttpBody) error
	}
	buf  []byte
	sent int
	last byte
}

func (c *chunkSender) copy(r io.Reader) error {
	tmp := make([]byte, logChunk)
	for {
		n, err := r.Read(tmp)
		if n > 0 {
			if werr := c.write(tmp[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *chunkSender) write(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), logChunk-len(c.buf))
		c.buf = append(c.buf, p[:n]...)
		c.last = p[n-1]
		p = p[n:]
		if len(c.buf) == logChunk {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	// The message owns its bytes: a stream may hold them after Send.
	data := slices.Clone(c.buf)
	c.sent += len(data)
	c.buf = c.buf[:0]
	return c.stream.Send(&httpbody.HttpBody{ContentType: "text/plain", Data: data})
}

// open opens every Log's bytes and counts them as stored now.
func (s *LogsService) open(ctx context.Context, logs []*store.Record) ([]io.ReadCloser, int64, error) {
	var parts []io.ReadCloser
	var total int64
	for _, l := range logs {
		r, n, err := s.Store.OpenLogSized(ctx, l)
		if err != nil {
			return parts, 0, s.storeError(ctx, fmt.Errorf("opening %s: %w", l.Name, err), codes.Internal)
		}
		parts = append(parts, r)
		total += n
	}
	return parts, total, nil
}

// logsOf resolves a GetLog id within a Result: the Log Record itself, or the
// Logs of the run with that uid, in the order they are read.
func (s *LogsService) logsOf(ctx context.Context, resultName, id string) ([]*store.Record, error) {
	rec, err := s.Store.GetRecord(ctx, resultName+"/records/"+id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidArgument) {
		return nil, status.Error(codes.NotFound, notFound)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	if slices.Contains(logTypes, rec.DataType) {
		return []*store.Record{rec}, nil
	}
	runs := []*store.Record{rec}
	if rec.DataType == store.TypePipelineRun {
		if runs, err = s.taskRunsOf(ctx, rec); err != nil {
			return nil, err
		}
	}
	keys := make([]store.Key, len(runs))
	for i, r := range runs {
		keys[i] = r.Key()
	}
	byRun, err := s.Store.LogsForTaskRuns(ctx, keys)
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	var out []*store.Record
	for _, run := range runs {
		logs := byRun[run.Key()]
		// Only Logs of this Result: a uid names a run within its Result.
		logs = slices.DeleteFunc(slices.Clone(logs), func(l *store.Record) bool { return l.ResultName != run.ResultName })
		sortBySteps(run, logs)
		out = append(out, logs...)
	}
	if len(out) == 0 {
		return nil, status.Error(codes.NotFound, logMissing)
	}
	return out, nil
}

// taskRunsOf lists the TaskRuns of a PipelineRun in the order they
// started, as tkn prints a PipelineRun's logs.
func (s *LogsService) taskRunsOf(ctx context.Context, pr *store.Record) ([]*store.Record, error) {
	var out []*store.Record
	o := store.ListOptions{OrderBy: store.OrderBy{Field: store.OrderStartTime, Asc: true}, First: store.MaxPageSize}
	for {
		pages, err := s.Store.ListTaskRunsForPipelineRuns(ctx, []*store.Record{pr}, o)
		if err != nil {
			return nil, s.storeError(ctx, err, codes.Internal)
		}
		page := pages[pr.Name]
		if page == nil {
			return out, nil
		}
		out = append(out, page.Items...)
		if !page.HasNextPage {
			return out, nil
		}
		o.After = page.EndCursor()
	}
}

// sortBySteps orders a TaskRun's step Logs as its steps ran (status.steps,
// else spec.steps); Logs of no known step keep their order, after them.
func sortBySteps(run *store.Record, logs []*store.Record) {
	var tr struct {
		Spec struct {
			Steps []struct{ Name string } `json:"steps"`
		} `json:"spec"`
		Status struct {
			Steps []struct{ Name string } `json:"steps"`
		} `json:"status"`
	}
	_ = json.Unmarshal(run.Data, &tr) // a run that does not decode keeps the stored order
	steps := tr.Status.Steps
	if len(steps) == 0 {
		steps = tr.Spec.Steps
	}
	position := func(l *store.Record) int {
		var d store.LogData
		if json.Unmarshal(l.Data, &d) == nil {
			for i, st := range steps {
				if st.Name == d.Spec.Step {
					return i
				}
			}
		}
		return len(steps)
	}
	slices.SortStableFunc(logs, func(a, b *store.Record) int { return position(a) - position(b) })
}

// logOrders are ListLogs' order_by fields: upstream's database names (B17),
// and the API's names, which are harmless to accept.
var logOrders = map[string]store.OrderField{
	"created_time": store.OrderCreateTime, "updated_time": store.OrderUpdateTime,
	"create_time": store.OrderCreateTime, "update_time": store.OrderUpdateTime,
}

// ListLogs lists the Log Records of a parent as ListRecords does, with
// their names under …/logs/.
func (s *LogsService) ListLogs(ctx context.Context, req *pb.ListRecordsRequest) (*pb.ListRecordsResponse, error) {
	cond := `data_type == "` + store.TypeLog + `"`
	if f := strings.TrimSpace(req.GetFilter()); f != "" {
		cond = "(" + f + ") && " + cond
	}
	items, next, err := s.listRecordItems(ctx, req, cond, logOrders, access.Logs)
	if err != nil {
		return nil, err
	}
	out := &pb.ListRecordsResponse{NextPageToken: next}
	for _, r := range items {
		p := recordProto(r)
		p.Name = logName(r.Name)
		out.Records = append(out.Records, p)
	}
	return out, nil
}

// logName turns "<p>/results/<r>/records/<id>" into "<p>/results/<r>/logs/<id>".
func logName(recordName string) string {
	i := strings.LastIndex(recordName, "/records/")
	if i < 0 {
		return recordName
	}
	return recordName[:i] + "/logs/" + recordName[i+len("/records/"):]
}

// logRecord validates a log name, decides access, and finds its Log Record.
func (s *LogsService) logRecord(ctx context.Context, name, verb string) (*store.Record, error) {
	parent, result, id, err := parseLogName(name)
	if err != nil {
		return nil, err
	}
	if err := accessError(s.Access.Allow(ctx, parent, access.Logs, verb)); err != nil {
		return nil, err
	}
	recordName := store.ResultName(parent, result) + "/records/" + id
	rec, err := s.Store.GetRecord(ctx, recordName)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidArgument) {
		return nil, status.Error(codes.NotFound, notFound)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, codes.Internal)
	}
	if !slices.Contains(logTypes, rec.DataType) {
		return nil, invalidf("%s is a %s record, not a log: name a record of type %s", recordName, rec.DataType, store.TypeLog)
	}
	return rec, nil
}

// DeleteLog deletes a Log Record with its bytes.
func (s *LogsService) DeleteLog(ctx context.Context, req *pb.DeleteLogRequest) (*emptypb.Empty, error) {
	rec, err := s.logRecord(ctx, req.GetName(), access.Delete)
	if err != nil {
		return nil, err
	}
	if err := s.Store.DeleteRecord(ctx, rec.Name, ""); err != nil {
		return nil, s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return &emptypb.Empty{}, nil
}

// UpdateLog stores the bytes of a Log Record created before with
// CreateRecord, from a client stream whose messages all name it. The bytes
// replace any stored before (B12), so a retried upload is idempotent; the
// Record's status then says how many are stored.
func (s *LogsService) UpdateLog(stream pb.Logs_UpdateLogServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalidf("no log sent: send Log messages naming a Log record, then close the stream")
	}
	if err != nil {
		return err
	}
	name := first.GetName()
	rec, err := s.logRecord(ctx, name, access.Update)
	if err != nil {
		return err
	}
	in := &logUpload{stream: stream, name: name, cur: first.GetData()}
	size, err := s.Store.ReplaceLogBytes(ctx, rec, in)
	if in.err != nil {
		return in.err
	}
	if err != nil {
		return s.storeError(ctx, err, codes.Internal)
	}
	data, err := withStoredStatus(rec.Data, size)
	if err != nil {
		return invalidf("the data of %s is not a JSON object: %v", rec.Name, err)
	}
	if _, err := s.Store.UpdateRecord(ctx, rec.Name, data, ""); err != nil {
		return s.storeError(ctx, err, codes.FailedPrecondition)
	}
	return stream.SendAndClose(&pb.LogSummary{Record: name, BytesReceived: size})
}

// withStoredStatus sets what upstream's server sets once bytes are stored
// (status.size, status.isStored), and Annals' own status.available.
func withStoredStatus(data []byte, size int64) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	st, _ := doc["status"].(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	st["size"], st["isStored"], st["available"] = size, size > 0, true
	delete(st, "storage") // the bytes are in the database now
	doc["status"] = st
	return json.Marshal(doc)
}

// logUpload reads the data of an UpdateLog stream, message by message,
// checking that every message names the same Log.
type logUpload struct {
	stream pb.Logs_UpdateLogServer
	name   string
	cur    []byte
	err    error // a refusal of the stream, which wins over the store's error
	done   bool
}

func (u *logUpload) Read(p []byte) (int, error) {
	for len(u.cur) == 0 {
		if u.done {
			return 0, io.EOF
		}
		msg, err := u.stream.Recv()
		if errors.Is(err, io.EOF) {
			u.done = true
			continue
		}
		if err != nil {
			u.err = err
			return 0, err
		}
		if msg.GetName() != u.name {
			u.err = invalidf("%s: every message of a stream must name %q, one message named %q", logMultiNames, u.name, msg.GetName())
			return 0, u.err
		}
		u.cur = msg.GetData()
	}
	n := copy(p, u.cur)
	u.cur = u.cur[n:]
	return n, nil
}
