package watcher

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// Metrics of the watcher, registered by NewMetrics. A nil *Metrics records
// nothing, for tests.
type Metrics struct {
	stored      *prometheus.CounterVec
	storeTime   prometheus.Histogram
	batchSize   prometheus.Histogram
	lag         prometheus.Histogram
	errors      *prometheus.CounterVec
	givenUp     *prometheus.CounterVec
	logBytes    prometheus.Counter
	logsMissing prometheus.Counter
	followers   prometheus.Gauge
	deleted     *prometheus.CounterVec
	lost        prometheus.Counter
	leader      prometheus.Gauge

	queue queueMetrics
}

// NewMetrics registers the watcher's metrics, its workqueue's included, with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_watcher_runs_stored_total",
			Help: "Run states written to the store, by kind (unchanged states are not written)."}, []string{"kind"}),
		storeTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_watcher_store_seconds",
			Help: "Latency of one Record write.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_watcher_store_batch_writes",
			Help: "Record writes per store transaction (workers' writes share transactions).", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_watcher_completion_to_stored_seconds",
			Help: "Time from a run's completion to its final state (and logs) being stored.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_watcher_reconcile_errors_total",
			Help: "Failed attempts to reconcile a run, each retried with backoff, by kind."}, []string{"kind"}),
		givenUp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_watcher_runs_given_up_total",
			Help: "Reconciles that failed with a permanent error (the store refused the run as invalid): not retried until the run changes, by kind."}, []string{"kind"}),
		logBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_watcher_log_bytes_stored_total",
			Help: "Bytes of step logs stored (after truncation)."}),
		logsMissing: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_watcher_logs_unavailable_total",
			Help: "Step logs recorded as unavailable because their pod or container was gone."}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_watcher_runs_deleted_total",
			Help: "Finished runs deleted from the cluster after their grace period, by kind."}, []string{"kind"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_watcher_runs_lost_total",
			Help: "Runs stored unfinished and gone from the cluster when the watcher came back: their final state was lost."}),
		followers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_watcher_log_followers",
			Help: "Step logs being streamed into the store, or waiting for a free stream."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_watcher_leader",
			Help: "1 while this replica holds the leader lease and reconciles runs."}),
		queue: newQueueMetrics(),
	}
	reg.MustRegister(m.stored, m.storeTime, m.batchSize, m.lag, m.errors, m.givenUp, m.logBytes, m.logsMissing, m.followers, m.deleted, m.lost, m.leader)
	m.queue.register(reg)
	return m
}

// queueMetrics exports client-go's workqueue metrics under annals_watcher_queue_*.
type queueMetrics struct {
	depth                  prometheus.Gauge
	adds, retries          prometheus.Counter
	latency, work          prometheus.Histogram
	unfinished, longestRun prometheus.Gauge
}

func newQueueMetrics() queueMetrics {
	secs := prometheus.ExponentialBuckets(0.001, 4, 10)
	return queueMetrics{
		depth:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_watcher_queue_depth", Help: "Runs waiting to be reconciled."}),
		adds:       prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_watcher_queue_adds_total", Help: "Runs added to the queue."}),
		retries:    prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_watcher_queue_retries_total", Help: "Runs put back on the queue after a failure."}),
		latency:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_watcher_queue_wait_seconds", Help: "Time a run waits in the queue.", Buckets: secs}),
		work:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_watcher_reconcile_seconds", Help: "Time to reconcile one run.", Buckets: secs}),
		unfinished: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_watcher_queue_unfinished_work_seconds", Help: "Seconds of work in progress not yet finished."}),
		longestRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_watcher_queue_longest_running_seconds", Help: "Seconds the longest running reconcile has taken so far."}),
	}
}

func (q queueMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(q.depth, q.adds, q.retries, q.latency, q.work, q.unfinished, q.longestRun)
}

// provider hands the metrics to client-go's workqueue (one queue per Watcher).
func (m *Metrics) provider() workqueue.MetricsProvider {
	if m == nil {
		return nil
	}
	return queueProvider(m.queue)
}

type queueProvider queueMetrics

func (p queueProvider) NewDepthMetric(string) workqueue.GaugeMetric     { return p.depth }
func (p queueProvider) NewAddsMetric(string) workqueue.CounterMetric    { return p.adds }
func (p queueProvider) NewRetriesMetric(string) workqueue.CounterMetric { return p.retries }
func (p queueProvider) NewLatencyMetric(string) workqueue.HistogramMetric {
	return p.latency
}
func (p queueProvider) NewWorkDurationMetric(string) workqueue.HistogramMetric {
	return p.work
}
func (p queueProvider) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return p.unfinished
}
func (p queueProvider) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return p.longestRun
}
