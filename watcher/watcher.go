package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tekton "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	informers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	listers "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/annals-dev/annals/store"
)

// Config says what the Watcher watches and what it may do to runs.
type Config struct {
	// Namespaces to watch; empty watches all namespaces.
	Namespaces []string
	// LabelSelector limits the runs watched (Kubernetes selector syntax).
	LabelSelector string
	// Workers reconcile runs in parallel (default 16); their Record writes
	// share transactions (see batcher).
	Workers int
	// Resync replays every run to the workers this often (default 10h), a
	// safety net for events lost to bugs; a restart always replays.
	Resync time.Duration
	// Logs turns on storing the step logs of finished TaskRuns.
	Logs bool
	// LogLimit is the most bytes kept of one step's log (0: no limit).
	LogLimit int64
	// LiveLogInterval, when positive, also follows the logs of running
	// TaskRuns' steps as they are written, and stores what arrived at least
	// this often (full 256 KiB chunks at once), so that they can be read
	// live. 0 reads each step's log once its TaskRun has finished.
	LiveLogInterval time.Duration
	// LogFollowers bounds how many step logs are streamed at once (default
	// 64); more wait for a free stream.
	LogFollowers int
	// CompletedRunGracePeriod, when positive, deletes a finished run from the
	// cluster this long after it completed, once it and its logs are stored.
	CompletedRunGracePeriod time.Duration
	// Finalizers holds runs deleted by others until their final state is stored.
	Finalizers bool
	// MaxRetryDelay caps the backoff between retries of a failing run (default 5m).
	MaxRetryDelay time.Duration
}

// Finalizer is the finalizer the watcher puts on runs with Config.Finalizers.
const Finalizer = "annals.dev/store"

// Kinds of run, as in the objects and in the work items.
const (
	kindPipelineRun = "PipelineRun"
	kindTaskRun     = "TaskRun"
)

// runKey names one run to reconcile.
type runKey struct{ Kind, Namespace, Name string }

func (k runKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Watcher records every TaskRun and PipelineRun it sees into the store.
type Watcher struct {
	cfg     Config
	store   *store.Store
	kube    kubernetes.Interface
	tekton  tekton.Interface
	logs    LogSource
	log     *slog.Logger
	metrics *Metrics

	factories []informers.SharedInformerFactory
	prLister  map[string]listers.PipelineRunLister // by namespace; "" when watching all
	trLister  map[string]listers.TaskRunLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[runKey]
	writes    *batcher
	ready     atomic.Bool

	mu        sync.Mutex
	seen      map[string][32]byte  // run uid -> digest of the state last stored
	logsDone  map[string]bool      // TaskRun uid -> its logs are stored
	tombstone map[runKey]runObject // the last state of runs deleted from the cluster
	followers map[followKey]*follower

	runCtx      context.Context // Run's: followers live as long as it
	followWG    sync.WaitGroup
	followSlots chan struct{} // one per log streamed now
}

// Options are the Watcher's collaborators; Store, Kube and Tekton are required.
type Options struct {
	Store   *store.Store
	Kube    kubernetes.Interface
	Tekton  tekton.Interface
	Logs    LogSource // default: pods/log through Kube
	Log     *slog.Logger
	Metrics *Metrics
}

// New builds a Watcher; Run starts it.
func New(cfg Config, o Options) (*Watcher, error) {
	if o.Store == nil || o.Kube == nil || o.Tekton == nil {
		return nil, errors.New("watcher: the store and both Kubernetes clients are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Hour
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = 5 * time.Minute
	}
	if cfg.LogFollowers <= 0 {
		cfg.LogFollowers = 64
	}
	if cfg.LogLimit < 0 {
		return nil, errors.New("watcher: the log limit cannot be negative")
	}
	if _, err := metav1.ParseToLabelSelector(cfg.LabelSelector); cfg.LabelSelector != "" && err != nil {
		return nil, fmt.Errorf("watcher: label selector %q: %w", cfg.LabelSelector, err)
	}
	if o.Logs == nil {
		o.Logs = PodLogs{Client: o.Kube}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		cfg: cfg, store: o.Store, kube: o.Kube, tekton: o.Tekton, logs: o.Logs, log: o.Log, metrics: o.Metrics,
		prLister: map[string]listers.PipelineRunLister{}, trLister: map[string]listers.TaskRunLister{},
		seen: map[string][32]byte{}, logsDone: map[string]bool{}, tombstone: map[runKey]runObject{},
		followers: map[followKey]*follower{}, followSlots: make(chan struct{}, cfg.LogFollowers),
		writes: newBatcher(o.Store, 200, 2*time.Millisecond),
	}
	if o.Metrics != nil {
		w.writes.sizes = func(n int) { o.Metrics.batchSize.Observe(float64(n)) }
	}
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[runKey](100*time.Millisecond, cfg.MaxRetryDelay),
		// Bounds the retries of all runs together, so a database outage
		// does not turn into a storm of attempts.
		&workqueue.TypedBucketRateLimiter[runKey]{Limiter: newBucket(50, 200)},
	)
	w.queue = workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
		workqueue.TypedRateLimitingQueueConfig[runKey]{Name: "annals_watcher", MetricsProvider: o.Metrics.provider()})

	namespaces := cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(o.Tekton, cfg.Resync,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = cfg.LabelSelector }))
		prs, trs := f.Tekton().V1().PipelineRuns(), f.Tekton().V1().TaskRuns()
		for kind, inf := range map[string]cache.SharedIndexInformer{kindPipelineRun: prs.Informer(), kindTaskRun: trs.Informer()} {
			if _, err := inf.AddEventHandler(w.handler(kind)); err != nil {
				return nil, err
			}
			w.synced = append(w.synced, inf.HasSynced)
		}
		w.prLister[ns], w.trLister[ns] = prs.Lister(), trs.Lister()
		w.factories = append(w.factories, f)
	}
	return w, nil
}

// handler turns informer events into work items. A deleted run's last state
// is kept so that it can still be stored.
func (w *Watcher) handler(kind string) cache.ResourceEventHandler {
	enqueue := func(obj any) {
		if o, ok := asRun(obj); ok {
			w.queue.Add(runKey{kind, o.GetNamespace(), o.GetName()})
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			o, ok := asRun(obj)
			if !ok {
				return
			}
			k := runKey{kind, o.GetNamespace(), o.GetName()}
			w.mu.Lock()
			w.tombstone[k] = o
			w.mu.Unlock()
			w.queue.Add(k)
		},
	}
}

// Ready reports whether the informers have synced and workers are running.
func (w *Watcher) Ready() bool { return w.ready.Load() }

// Run watches until ctx ends: it syncs the informers, counts the runs lost
// while no watcher ran, and reconciles with the configured workers.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.queue.ShutDown()
	for _, f := range w.factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range w.factories {
			f.Shutdown()
		}
	}()
	w.log.Info("watcher starting", "namespaces", w.cfg.Namespaces, "selector", w.cfg.LabelSelector, "workers", w.cfg.Workers)
	if !cache.WaitForCacheSync(ctx.Done(), w.synced...) {
		return fmt.Errorf("watcher: informers did not sync: %w", ctx.Err())
	}
	if err := w.countLost(ctx); err != nil {
		// Only the count is lost; the runs themselves are as stored.
		w.log.Warn("could not look for runs lost while no watcher ran", "error", err)
	}
	w.mu.Lock()
	w.runCtx = ctx
	w.mu.Unlock()
	defer w.followWG.Wait() // followers end with ctx; a stopped one leaves its log live, to resume
	var wg sync.WaitGroup
	batchCtx, stopBatches := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBatches() // after the workers: they may be waiting on a batch
	go w.writes.run(batchCtx)
	for range w.cfg.Workers {
		wg.Go(func() { wait.UntilWithContext(ctx, w.work, time.Second) })
	}
	w.ready.Store(true)
	w.log.Info("watcher running")
	<-ctx.Done()
	w.ready.Store(false)
	w.queue.ShutDown()
	wg.Wait()
	return nil
}

// work reconciles runs until the queue shuts down.
func (w *Watcher) work(ctx context.Context) {
	for {
		k, quit := w.queue.Get()
		if quit {
			return
		}
		w.finish(ctx, k, w.reconcile(ctx, k))
		w.queue.Done(k)
	}
}

// finish settles a reconciled run in the queue: done, retried with
// backoff, or, when the error is permanent, given up (retrying cannot help
// and would go on forever).
func (w *Watcher) finish(ctx context.Context, k runKey, err error) {
	switch {
	case err == nil:
		w.queue.Forget(k)
	case ctx.Err() != nil:
		// Shutting down: the run is reconciled again at the next start.
	case permanent(err):
		if w.metrics != nil {
			w.metrics.errors.WithLabelValues(k.Kind).Inc()
			w.metrics.givenUp.WithLabelValues(k.Kind).Inc()
		}
		w.log.Error("run cannot be stored; given up until it changes", "run", k.String(), "error", err)
		w.queue.Forget(k)
	default:
		if w.metrics != nil {
			w.metrics.errors.WithLabelValues(k.Kind).Inc()
		}
		w.log.Warn("reconcile failed; will retry", "run", k.String(), "attempt", w.queue.NumRequeues(k)+1, "error", err)
		w.queue.AddRateLimited(k)
	}
}

// countLost counts the runs stored unfinished that are no longer in the
// cluster: they were deleted while no watcher ran, so their last seen state
// is all that is stored.
func (w *Watcher) countLost(ctx context.Context) error {
	present := map[string]bool{}
	for ns := range w.prLister {
		prs, err := w.prLister[ns].List(everything)
		if err != nil {
			return err
		}
		for _, pr := range prs {
			present[string(pr.UID)] = true
		}
		trs, err := w.trLister[ns].List(everything)
		if err != nil {
			return err
		}
		for _, tr := range trs {
			present[string(tr.UID)] = true
		}
	}
	runs, err := w.store.UnfinishedRuns(ctx, w.cfg.Namespaces)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if present[r.UID] || !w.selects(r.Labels) {
			continue
		}
		if w.metrics != nil {
			w.metrics.lost.Inc()
		}
		w.log.Warn("run deleted while no watcher ran; only its last seen state is stored", "record", r.Name, "run", r.RunName, "status", r.Status)
	}
	return nil
}

// pipelineRunUID finds a PipelineRun's uid in the informer cache.
func (w *Watcher) pipelineRunUID(ns, name string) (string, bool) {
	l := w.prLister[ns]
	if l == nil {
		l = w.prLister[metav1.NamespaceAll]
	}
	if l == nil {
		return "", false
	}
	pr, err := l.PipelineRuns(ns).Get(name)
	if err != nil {
		return "", false
	}
	return string(pr.UID), true
}

// get returns the run from the informer cache or, when it was deleted, its
// last state (and true).
func (w *Watcher) get(k runKey) (runObject, bool, error) {
	ns := k.Namespace
	if _, ok := w.prLister[ns]; !ok {
		ns = metav1.NamespaceAll
	}
	var (
		obj runObject
		err error
	)
	if k.Kind == kindPipelineRun {
		var pr *pipelinev1.PipelineRun
		if pr, err = w.prLister[ns].PipelineRuns(k.Namespace).Get(k.Name); err == nil {
			obj = pr
		}
	} else {
		var tr *pipelinev1.TaskRun
		if tr, err = w.trLister[ns].TaskRuns(k.Namespace).Get(k.Name); err == nil {
			obj = tr
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.tombstone, k) // recreated under the same name
		return obj, false, nil
	}
	if last, ok := w.tombstone[k]; ok {
		return last, true, nil
	}
	return nil, false, nil
}
