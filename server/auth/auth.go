// Package auth authenticates API callers and authorizes what they do the
// Kubernetes way: bearer tokens checked with a TokenReview (or verified
// client certificates), impersonation honoured only when allowed, and every
// action decided by a SubjectAccessReview on the resources Tekton Results
// uses (results.tekton.dev results, records and logs) in one namespace.
// Decisions are cached briefly; an error never turns into an allow. The
// work callers can cause is bounded (see limits.go): bogus tokens, many
// references in one request or many namespaces cannot stall the checks of
// others.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/annals-dev/annals/server/access"
)

// Group is the API group of the resources, as in Tekton Results' ClusterRoles.
const Group = "results.tekton.dev"

// Resources and verbs that are authorized: the access package's names.
const (
	Results = access.Results
	Records = access.Records
	Logs    = access.Logs

	Get    = access.Get
	List   = access.List
	Create = access.Create
	Update = access.Update
	Delete = access.Delete
)

// User is an authenticated caller.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Error is a refusal, with the code the API reports it under.
type Error struct {
	code, msg string
}

func (e *Error) Error() string { return e.msg }

// ErrorCode is the GraphQL extensions.code of the refusal.
func (e *Error) ErrorCode() string { return e.code }

// Sentinels for errors.Is.
var (
	ErrUnauthenticated  = &Error{"UNAUTHENTICATED", "unauthenticated"}
	ErrPermissionDenied = &Error{"PERMISSION_DENIED", "permission denied"}
)

// Is makes every refusal match its sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.code == e.code
}

func unauthenticated(format string, args ...any) error {
	return &Error{"UNAUTHENTICATED", fmt.Sprintf(format, args...)}
}

func denied(format string, args ...any) error {
	return &Error{"PERMISSION_DENIED", fmt.Sprintf(format, args...)}
}

type userKey struct{}

// WithUser returns ctx carrying the caller.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the caller of the request ctx belongs to, nil when none.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// Kubernetes authenticates and authorizes against a Kubernetes API server.
type Kubernetes struct {
	tokenClient  kubernetes.Interface // TokenReviews
	reviewClient kubernetes.Interface // SubjectAccessReviews
	audiences    []string
	tokens       *expirable.LRU[[32]byte, *User]  // accepted tokens, by hash
	rejected     *expirable.LRU[[32]byte, error]  // rejected tokens, by hash, briefly
	knownGood    *expirable.LRU[[32]byte, string] // tokens accepted lately: user name
	allowed      *expirable.LRU[string, bool]

	// One flight group per kind of key, so that keys never collide.
	tokenFlight, decisionFlight, sweepFlight singleflight.Group

	unknownTokens    chan struct{} // TokenReviews in flight for tokens not known
	unknownRate      *rate.Limiter // and their rate: half the client's, so known tokens always find room
	unknownTokenWait time.Duration
	perUser          *userGates
	perRequest       int

	sweepSlots     chan struct{} // SubjectAccessReviews in flight for namespace sweeps
	sweepRate      *rate.Limiter // and their rate: 3/4 of the client's, so single checks always find room
	visibility     *expirable.LRU[string, *visibility]
	namespaceTTL   time.Duration
	refreshBackoff time.Duration
	decisionTTL    time.Duration
}

// Defaults of Options.
const (
	DefaultTokenReviewQPS            = 100
	DefaultTokenReviewBurst          = 200
	DefaultAccessReviewQPS           = 400
	DefaultAccessReviewBurst         = 1000
	DefaultUnknownTokenConcurrency   = 16
	DefaultReviewsPerRequest         = 4
	DefaultReviewsPerUser            = 8
	DefaultNamespaceSweepConcurrency = 4
	DefaultNamespaceCacheTTL         = time.Minute
)

// Options of Kubernetes.
type Options struct {
	// CacheTTL is how long an authenticated token, a rejected token and a
	// decision (allow or deny, each under its own exact question) are
	// reused (default 10s).
	CacheTTL time.Duration
	// Audiences the tokens must be for (TokenReview spec.audiences); empty:
	// the API server's own.
	Audiences []string

	// Client limits of the TokenReview and the SubjectAccessReview clients
	// NewKubernetesForConfig makes (each its own, apart from every other
	// client of the process); defaults DefaultTokenReviewQPS and so on.
	TokenReviewQPS    float32
	TokenReviewBurst  int
	AccessReviewQPS   float32
	AccessReviewBurst int

	// UnknownTokenConcurrency bounds the TokenReviews in flight for tokens
	// not accepted lately, and half of TokenReviewQPS (and burst) their
	// rate; a request finding no room waits at most UnknownTokenWait
	// (default 1s) and is then refused as busy (429).
	UnknownTokenConcurrency int
	UnknownTokenWait        time.Duration
	// ReviewsPerRequest bounds the SubjectAccessReviews one request (one
	// WithRequestScope) has in flight; ReviewsPerUser those of one caller
	// across all its requests.
	ReviewsPerRequest, ReviewsPerUser int
	// NamespaceSweepConcurrency bounds the SubjectAccessReviews in flight
	// for listing "-" (one per namespace holding Results), all callers
	// together; they also take at most 3/4 of AccessReviewQPS (and burst),
	// so that single checks never queue behind a sweep.
	NamespaceSweepConcurrency int
	// NamespaceCacheTTL is the longest a caller's list of visible
	// namespaces is used; past half of it (and at least CacheTTL) it is
	// refreshed in the background while the old one still answers.
	NamespaceCacheTTL time.Duration
}

func (o *Options) defaults() {
	if o.CacheTTL <= 0 {
		o.CacheTTL = 10 * time.Second
	}
	if o.TokenReviewQPS <= 0 {
		o.TokenReviewQPS = DefaultTokenReviewQPS
	}
	if o.TokenReviewBurst <= 0 {
		o.TokenReviewBurst = DefaultTokenReviewBurst
	}
	if o.AccessReviewQPS <= 0 {
		o.AccessReviewQPS = DefaultAccessReviewQPS
	}
	if o.AccessReviewBurst <= 0 {
		o.AccessReviewBurst = DefaultAccessReviewBurst
	}
	if o.UnknownTokenConcurrency <= 0 {
		o.UnknownTokenConcurrency = DefaultUnknownTokenConcurrency
	}
	if o.UnknownTokenWait <= 0 {
		o.UnknownTokenWait = time.Second
	}
	if o.ReviewsPerRequest <= 0 {
		o.ReviewsPerRequest = DefaultReviewsPerRequest
	}
	if o.ReviewsPerUser <= 0 {
		o.ReviewsPerUser = DefaultReviewsPerUser
	}
	if o.NamespaceSweepConcurrency <= 0 {
		o.NamespaceSweepConcurrency = DefaultNamespaceSweepConcurrency
	}
	if o.NamespaceCacheTTL <= 0 {
		o.NamespaceCacheTTL = DefaultNamespaceCacheTTL
	}
	o.NamespaceCacheTTL = max(o.NamespaceCacheTTL, o.CacheTTL)
}

// NewKubernetes returns an authenticator and authorizer using client, whose
// identity needs create on tokenreviews and subjectaccessreviews. The
// client's own rate limits apply; NewKubernetesForConfig gives the checks
// clients of their own.
func NewKubernetes(client kubernetes.Interface, o Options) *Kubernetes {
	return newKubernetes(client, client, o)
}

// NewKubernetesForConfig is NewKubernetes with two clients of its own made
// from cfg: one for TokenReviews and one for SubjectAccessReviews, each
// with the QPS and burst of o, so that checks neither wait behind the
// process's other API calls nor the two kinds behind each other.
func NewKubernetesForConfig(cfg *rest.Config, o Options) (*Kubernetes, error) {
	o.defaults()
	clientFor := func(what string, qps float32, burst int) (kubernetes.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.QPS, c.Burst, c.RateLimiter = qps, burst, nil
		client, err := kubernetes.NewForConfig(c)
		if err != nil {
			return nil, fmt.Errorf("making the %s client: %w", what, err)
		}
		return client, nil
	}
	tokens, err := clientFor("TokenReview", o.TokenReviewQPS, o.TokenReviewBurst)
	if err != nil {
		return nil, err
	}
	reviews, err := clientFor("SubjectAccessReview", o.AccessReviewQPS, o.AccessReviewBurst)
	if err != nil {
		return nil, err
	}
	return newKubernetes(tokens, reviews, o), nil
}

func newKubernetes(tokenClient, reviewClient kubernetes.Interface, o Options) *Kubernetes {
	o.defaults()
	return &Kubernetes{
		tokenClient:      tokenClient,
		reviewClient:     reviewClient,
		audiences:        o.Audiences,
		tokens:           expirable.NewLRU[[32]byte, *User](10000, nil, o.CacheTTL),
		rejected:         expirable.NewLRU[[32]byte, error](10000, nil, o.CacheTTL),
		knownGood:        expirable.NewLRU[[32]byte, string](10000, nil, time.Hour),
		allowed:          expirable.NewLRU[string, bool](50000, nil, o.CacheTTL),
		unknownTokens:    make(chan struct{}, o.UnknownTokenConcurrency),
		unknownRate:      rate.NewLimiter(rate.Limit(o.TokenReviewQPS/2), max(1, o.TokenReviewBurst/2)),
		unknownTokenWait: o.UnknownTokenWait,
		perUser:          newUserGates(o.ReviewsPerUser),
		perRequest:       o.ReviewsPerRequest,
		sweepSlots:       make(chan struct{}, o.NamespaceSweepConcurrency),
		sweepRate:        rate.NewLimiter(rate.Limit(o.AccessReviewQPS*3/4), max(1, o.AccessReviewBurst*3/4)),
		visibility:       expirable.NewLRU[string, *visibility](10000, nil, o.NamespaceCacheTTL),
		namespaceTTL:     o.NamespaceCacheTTL,
		refreshBackoff:   o.CacheTTL,
		decisionTTL:      o.CacheTTL,
	}
}

// DecisionTTL is how long an access decision is reused: no answer built
// on decisions may be kept longer (the response cache's bound).
func (k *Kubernetes) DecisionTTL() time.Duration { return k.decisionTTL }

// ReviewsPerRequest is the bound to give WithRequestScope.
func (k *Kubernetes) ReviewsPerRequest() int { return k.perRequest }

// Authenticate finds the caller of r: a verified client certificate, or a
// bearer token checked by TokenReview, then impersonation if asked for and
// allowed.
func (k *Kubernetes) Authenticate(r *http.Request) (*User, error) {
	var u *User
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		u = &User{Name: cert.Subject.CommonName, Groups: slices.Clone(cert.Subject.Organization)}
	} else {
		token, ok := bearerToken(r)
		if !ok {
			return nil, unauthenticated("no credentials: send 'Authorization: Bearer <token>' with a Kubernetes token (e.g. from 'kubectl create token')")
		}
		var err error
		if u, err = k.reviewToken(r.Context(), token); err != nil {
			return nil, err
		}
	}
	return k.impersonate(r, u)
}

// AuthenticateToken checks an "Authorization" value ("Bearer TOKEN"), as a
// WebSocket client sends it in its connection_init payload.
func (k *Kubernetes) AuthenticateToken(ctx context.Context, authorization string) (*User, error) {
	token, ok := parseBearer(authorization)
	if !ok {
		return nil, unauthenticated("no credentials: send {\"Authorization\": \"Bearer <token>\"} in connection_init, or the header on the upgrade request")
	}
	return k.reviewToken(ctx, token)
}

// WebSocketMiddleware authenticates an upgrade request that carries
// credentials, and lets one without through to authenticate in its
// connection_init message.
func (k *Kubernetes) WebSocketMiddleware(next http.Handler) http.Handler {
	authenticated := k.Middleware(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			next.ServeHTTP(w, r)
			return
		}
		authenticated.ServeHTTP(w, r)
	})
}

func bearerToken(r *http.Request) (string, bool) {
	return parseBearer(r.Header.Get("Authorization"))
}

func parseBearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// KnownCaller names the caller of r when its credentials are already known
// good (a verified client certificate, or a bearer token accepted lately),
// without asking anything: per-client limits count such callers by name and
// everyone else by address.
func (k *Kubernetes) KnownCaller(r *http.Request) (string, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return r.TLS.VerifiedChains[0][0].Subject.CommonName, true
	}
	token, ok := bearerToken(r)
	if !ok {
		return "", false
	}
	key := sha256.Sum256([]byte(token))
	if u, ok := k.tokens.Peek(key); ok {
		return u.Name, true
	}
	return k.knownGood.Peek(key)
}

// reviewToken checks a bearer token, from the caches when it can. Only the
// token's SHA-256 is kept, never the token. Tokens accepted lately are
// checked again straight away when their cache entry expires; others take
// a turn among UnknownTokenConcurrency, so a flood of made-up tokens never
// delays callers whose tokens are known.
func (k *Kubernetes) reviewToken(ctx context.Context, token string) (*User, error) {
	key := sha256.Sum256([]byte(token))
	if u, ok := k.tokens.Get(key); ok {
		return u, nil
	}
	if err, ok := k.rejected.Get(key); ok {
		return nil, err
	}
	_, known := k.knownGood.Get(key)
	v, err, _ := k.tokenFlight.Do(string(key[:]), func() (any, error) {
		if !known {
			wait, cancel := context.WithTimeout(ctx, k.unknownTokenWait)
			err := acquire(wait, k.unknownTokens)
			if err == nil {
				defer func() { <-k.unknownTokens }()
				err = k.unknownRate.Wait(wait) // fails at once when the wait would pass the deadline
			}
			cancel()
			if err != nil {
				return nil, busy("too many new credentials are being checked right now; retry in a second")
			}
		}
		tr, err := k.tokenClient.AuthenticationV1().TokenReviews().Create(ctx,
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: k.audiences}}, metav1.CreateOptions{})
		if err != nil {
			// Fail closed, and do not remember: the next request asks again.
			return nil, fmt.Errorf("checking the token with the Kubernetes API: %w", err)
		}
		if !tr.Status.Authenticated {
			refusal := unauthenticated("the bearer token was not accepted by the cluster: it is invalid, expired or revoked")
			k.rejected.Add(key, refusal)
			k.knownGood.Remove(key)
			return nil, refusal
		}
		u := &User{Name: tr.Status.User.Username, UID: tr.Status.User.UID, Groups: tr.Status.User.Groups}
		if len(tr.Status.User.Extra) > 0 {
			u.Extra = map[string][]string{}
			for key, vals := range tr.Status.User.Extra {
				u.Extra[key] = vals
			}
		}
		k.tokens.Add(key, u)
		k.knownGood.Add(key, u.Name)
		return u, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*User), nil
}

// impersonate applies the Impersonate-User, -Group, -Uid and -Extra-*
// headers when the caller may impersonate each of them, as the API server
// itself decides it.
func (k *Kubernetes) impersonate(r *http.Request, u *User) (*User, error) {
	name := r.Header.Get("Impersonate-User")
	groups := r.Header.Values("Impersonate-Group")
	uid := r.Header.Get("Impersonate-Uid")
	extra := map[string][]string{}
	for h, vals := range r.Header {
		if key, ok := strings.CutPrefix(h, "Impersonate-Extra-"); ok {
			if unescaped, err := url.PathUnescape(key); err == nil {
				key = unescaped
			}
			extra[strings.ToLower(key)] = vals
		}
	}
	if name == "" {
		if len(groups) > 0 || uid != "" || len(extra) > 0 {
			return nil, denied("Impersonate-Group, Impersonate-Uid and Impersonate-Extra-* need Impersonate-User")
		}
		return u, nil
	}
	checks := []authzv1.ResourceAttributes{{Verb: "impersonate", Resource: "users", Name: name}}
	for _, g := range groups {
		checks = append(checks, authzv1.ResourceAttributes{Verb: "impersonate", Resource: "groups", Name: g})
	}
	if uid != "" {
		checks = append(checks, authzv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "uids", Name: uid})
	}
	for key, vals := range extra {
		for _, v := range vals {
			checks = append(checks, authzv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: key, Name: v})
		}
	}
	for _, attrs := range checks {
		ok, err := k.decide(r.Context(), u, attrs)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, denied("%s may not impersonate %s %q", u.Name, strings.TrimSuffix(attrs.Resource, "s"), attrs.Name)
		}
	}
	imp := &User{Name: name, UID: uid, Groups: append(slices.Clone(groups), "system:authenticated")}
	if len(extra) > 0 {
		imp.Extra = extra
	}
	return imp, nil
}

// Authorize allows the caller of ctx to do verb on resource in namespace,
// or says why not.
func (k *Kubernetes) Authorize(ctx context.Context, namespace, resource, verb string) error {
	u := UserFrom(ctx)
	if u == nil {
		return unauthenticated("no authenticated caller")
	}
	ok, err := k.decide(ctx, u, authzv1.ResourceAttributes{Namespace: namespace, Verb: verb, Group: Group, Resource: resource})
	if err != nil {
		return err
	}
	if !ok {
		return denied("%s may not %s %s.%s in namespace %q", u.Name, verb, resource, Group, namespace)
	}
	return nil
}

// decide answers a question for u: from the request's memo, the shared
// cache, or a SubjectAccessReview taken within the request's and the
// caller's bounds. Errors are never cached beyond the request and never
// allow.
func (k *Kubernetes) decide(ctx context.Context, u *User, attrs authzv1.ResourceAttributes) (bool, error) {
	key := decisionKey(u, attrs)
	if scope := scopeFrom(ctx); scope != nil {
		return scope.memo(ctx, key, func() (bool, error) { return k.decideShared(ctx, u, attrs, key, scope.slots) })
	}
	return k.decideShared(ctx, u, attrs, key, nil)
}

func (k *Kubernetes) decideShared(ctx context.Context, u *User, attrs authzv1.ResourceAttributes, key string, requestSlots chan struct{}) (bool, error) {
	if allowed, ok := k.allowed.Get(key); ok {
		return allowed, nil
	}
	v, err, _ := k.decisionFlight.Do(key, func() (any, error) {
		if requestSlots != nil {
			if err := acquire(ctx, requestSlots); err != nil {
				return false, err
			}
			defer func() { <-requestSlots }()
		}
		release, err := k.perUser.acquire(ctx, userID(u))
		if err != nil {
			return false, err
		}
		defer release()
		allowed, err := k.review(ctx, u, attrs)
		if err != nil {
			return false, err
		}
		k.allowed.Add(key, allowed)
		return allowed, nil
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// review asks the API server one SubjectAccessReview.
func (k *Kubernetes) review(ctx context.Context, u *User, attrs authzv1.ResourceAttributes) (bool, error) {
	spec := authzv1.SubjectAccessReviewSpec{User: u.Name, UID: u.UID, Groups: u.Groups, ResourceAttributes: &attrs}
	if len(u.Extra) > 0 {
		spec.Extra = map[string]authzv1.ExtraValue{}
		for key, vals := range u.Extra {
			spec.Extra[key] = vals
		}
	}
	sar, err := k.reviewClient.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking the Kubernetes API for an access review: %w", err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, nil
}

// userID names a caller for its per-caller bounds.
func userID(u *User) string { return u.Name + "\x1f" + u.UID }

// decisionKey names a decision by everything it depends on.
func decisionKey(u *User, a authzv1.ResourceAttributes) string {
	var b strings.Builder
	for _, part := range []string{u.Name, u.UID, strings.Join(u.Groups, "\x00"), a.Namespace, a.Verb, a.Group, a.Resource, a.Name} {
		b.WriteString(part)
		b.WriteByte(0x1f)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + strings.Join(u.Extra[k], "\x00") + "\x1e")
	}
	return b.String()
}

// Middleware authenticates every request it passes on; a request without
// valid credentials is answered 401 with a GraphQL-shaped error, and one
// whose credentials could not be checked with 503, and one that found the
// checks of new credentials busy with 429 and Retry-After.
func (k *Kubernetes) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := k.Authenticate(r)
		if err != nil {
			status := http.StatusServiceUnavailable
			var e *Error
			if errors.As(err, &e) {
				status = map[string]int{"UNAUTHENTICATED": http.StatusUnauthorized, "PERMISSION_DENIED": http.StatusForbidden,
					"RESOURCE_EXHAUSTED": http.StatusTooManyRequests}[e.code]
			}
			writeError(w, status, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

// writeError answers in the shape GraphQL clients read.
func writeError(w http.ResponseWriter, status int, err error) {
	code, msg := "INTERNAL", "could not check the credentials: the Kubernetes API is unavailable; try again"
	var e *Error
	if errors.As(err, &e) {
		code, msg = e.code, e.msg
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="annals"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"message": msg, "extensions": map[string]string{"code": code}}}})
	w.Write(append(body, '\n'))
}
