package retention

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the retention agent, registered by NewMetrics.
type Metrics struct {
	deletedResults prometheus.Counter
	deletedRecords prometheus.Counter
	deletedLogs    prometheus.Counter
	runs           *prometheus.CounterVec
	duration       prometheus.Histogram
}

// NewMetrics registers the agent's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deletedResults: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_retention_deleted_results_total", Help: "Results deleted by retention."}),
		deletedRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_retention_deleted_records_total", Help: "Records (logs included) deleted by retention."}),
		deletedLogs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_retention_deleted_log_bytes_total", Help: "Bytes of logs deleted by retention."}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_retention_runs_total", Help: "Retention runs by outcome: ok, error, skipped (another agent held the lock)."},
			[]string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_retention_run_duration_seconds", Help: "Duration of retention runs.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 8)}),
	}
	reg.MustRegister(m.deletedResults, m.deletedRecords, m.deletedLogs, m.runs, m.duration)
	return m
}

func (m *Metrics) observe(rep *Report, outcome string, dryRun bool) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(outcome).Inc()
	if rep == nil || dryRun {
		return
	}
	m.duration.Observe(rep.Duration.Seconds())
	m.deletedLogs.Add(float64(rep.LogBytes))
	for _, c := range rep.Counts {
		m.deletedResults.Add(float64(c.Results))
		m.deletedRecords.Add(float64(c.Records))
	}
}
