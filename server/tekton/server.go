package tekton

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/annals-dev/annals/server/access"
	"github.com/annals-dev/annals/server/auth"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	pb3 "github.com/annals-dev/annals/server/tekton/proto/v1alpha3"
	"github.com/annals-dev/annals/store"
)

// Config assembles the Tekton Results API.
type Config struct {
	Store *store.Store
	// Auth authenticates callers; nil serves everyone (--auth=none).
	Auth   *auth.Kubernetes
	Logger *slog.Logger
	// RequestID names a failure in the log and in the answer.
	RequestID func(context.Context) string
	// Logs serves tekton.results.v1alpha2.Logs and LogsV3
	// tekton.results.v1alpha3.Logs; nil serves the store's logs
	// (LogsService, LogsV3Service).
	Logs   pb.LogsServer
	LogsV3 pb3.LogsServer
	// RequestTimeout bounds each unary call (and cancels its SQL); 0: none.
	RequestTimeout time.Duration
}

// Services named by health checks.
var serviceNames = []string{"tekton.results.v1alpha2.Results", "tekton.results.v1alpha2.Logs", "tekton.results.v1alpha3.Logs"}

// Server is the Tekton Results API: gRPC, and REST onto the same handlers.
type Server struct {
	cfg     Config
	results *Service
	logs    pb.LogsServer
	grpc    *grpc.Server
	health  *health.Server
}

// New builds the API on the store.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var authz access.Authorizer
	if cfg.Auth != nil {
		authz = cfg.Auth
	}
	s := &Server{cfg: cfg, logs: cfg.Logs}
	s.results = &Service{Store: cfg.Store, Access: access.Decider{Auth: authz, Namespaces: cfg.Store.Namespaces}, Logger: cfg.Logger, RequestID: cfg.RequestID}
	builtin := &LogsService{Service: s.results}
	if s.logs == nil {
		s.logs = builtin
	}
	logsV3 := cfg.LogsV3
	if logsV3 == nil {
		logsV3 = &LogsV3Service{Logs: builtin}
	}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.unary), grpc.StreamInterceptor(s.stream))
	pb.RegisterResultsServer(s.grpc, s.results)
	pb.RegisterLogsServer(s.grpc, s.logs)
	pb3.RegisterLogsServer(s.grpc, logsV3)
	s.health = health.NewServer()
	for _, name := range serviceNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s
}

// IsGRPC tells a gRPC call from a REST or GraphQL request, as upstream's
// server does: HTTP/2 with a gRPC content type.
func IsGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// ServeGRPC answers a gRPC call (h2c, or h2 over TLS).
func (s *Server) ServeGRPC(w http.ResponseWriter, r *http.Request) { s.grpc.ServeHTTP(w, r) }

// unary authenticates the caller, runs the RPC, and trims the answer to
// the fields asked for: the one path of every unary call, gRPC or REST.
func (s *Server) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(methodOf(ctx), "/grpc.") {
		return handler(ctx, req) // health and reflection need no credentials
	}
	if s.cfg.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
	}
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	applyFields(resp, parseFields(md.Get("fields")))
	return resp, nil
}

func methodOf(ctx context.Context) string {
	m, _ := grpc.Method(ctx)
	return m
}

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasPrefix(info.FullMethod, "/grpc.") {
		return handler(srv, ss)
	}
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &streamWithContext{ServerStream: ss, ctx: ctx})
}

type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *streamWithContext) Context() context.Context { return s.ctx }

// authenticate finds the caller from the metadata (authorization,
// impersonate-*) and the TLS client certificate, with the same
// authenticator as GraphQL.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	if s.cfg.Auth == nil {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	r := &http.Request{Header: http.Header{}}
	r = r.WithContext(ctx)
	for key, values := range md {
		if key == "authorization" || strings.HasPrefix(key, "impersonate-") {
			for _, v := range values {
				r.Header.Add(key, v)
			}
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			r.TLS = &info.State
		}
	}
	u, err := s.cfg.Auth.Authenticate(r)
	if err != nil {
		var refusal *auth.Error
		if errors.As(err, &refusal) {
			msg := refusal.Error()
			if r.Header.Get("Authorization") == "" && r.TLS == nil {
				msg = "unable to find token: " + msg
			}
			return nil, status.Error(codes.Unauthenticated, msg)
		}
		return nil, status.Errorf(codes.Unavailable, "could not check the credentials: %v", err)
	}
	return auth.WithUser(ctx, u), nil
}

// Healthz answers GET /healthz as Tekton Results does: {"status":"SERVING"},
// or for ?service=NAME that service's status (404 for an unknown one).
func (s *Server) Healthz(w http.ResponseWriter, r *http.Request) {
	resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{Service: r.URL.Query().Get("service")})
	if err != nil {
		writeError(w, status.Error(codes.NotFound, "unknown service"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"` + resp.GetStatus().String() + `"}`))
}
