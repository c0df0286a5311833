package watcher

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader configures leader election on a Lease, so that of several watcher
// replicas exactly one reconciles at a time.
type Leader struct {
	Namespace, Name string // the Lease
	Identity        string // this replica, unique (e.g. pod name)
	// Lease timings; zero values take client-go's usual 15s/10s/2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// ErrLeadershipLost ends RunWithLeader when another replica took the lease;
// the process should exit and start again as a follower.
var ErrLeadershipLost = errors.New("watcher: lost the leader lease")

// RunWithLeader runs the watcher only while this replica holds the lease.
// It returns nil when ctx ends, and ErrLeadershipLost when the lease is lost
// before that.
func (w *Watcher) RunWithLeader(ctx context.Context, kube kubernetes.Interface, l Leader) error {
	if l.LeaseDuration == 0 {
		l.LeaseDuration, l.RenewDeadline, l.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watcher runs here rather than in the callback, so that this
	// function returns only once it has stopped.
	leading := make(chan context.Context, 1)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   l.LeaseDuration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { leading <- lctx },
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != l.Identity {
					w.log.Info("following", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	electorDone := make(chan struct{})
	go func() { elector.Run(ctx); close(electorDone) }()
	var runErr error
	select {
	case lctx := <-leading:
		w.log.Info("leading", "lease", l.Namespace+"/"+l.Name, "identity", l.Identity)
		if w.metrics != nil {
			w.metrics.leader.Set(1)
		}
		runErr = w.Run(lctx) // until the lease is lost or ctx ends
		if w.metrics != nil {
			w.metrics.leader.Set(0)
		}
	case <-electorDone:
	}
	cancel()
	<-electorDone
	if runErr != nil || outer.Err() != nil {
		return runErr
	}
	return ErrLeadershipLost
}
