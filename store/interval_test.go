package store_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

func TestIntervalString(t *testing.T) {
	const sec, day = int64(1_000_000), int64(86_400_000_000)
	for _, c := range []struct {
		iv   store.Interval
		want string
	}{
		{store.Interval{}, "00:00:00"},
		{store.Interval{Micros: 485*sec + 475610}, "00:08:05.47561"},
		{store.Interval{Micros: 30 * sec}, "00:00:30"},
		{store.Interval{Micros: (11*3600 + 3*60 + 29) * sec}, "11:03:29"},
		{store.Interval{Days: 1, Micros: (2*3600 + 3*60 + 4) * sec}, "1 day 02:03:04"},
		{store.Interval{Days: 4, Micros: (452*3600 + 35*60 + 14) * sec}, "4 days 452:35:14"},
		{store.Interval{Days: 2}, "2 days"},
		{store.Interval{Micros: 1}, "00:00:00.000001"},
		{store.Interval{Micros: -(3*3600*sec + 500_000)}, "-03:00:00.5"},
		{store.Interval{Days: -1, Micros: -2 * 3600 * sec}, "-1 days -02:00:00"},
		{store.Interval{Days: -1, Micros: 2 * 3600 * sec}, "-1 days +02:00:00"},
		{store.IntervalOf(26*3600*sec + 1), "1 day 02:00:00.000001"},
		{store.IntervalOf(-day - 1), "-1 days -00:00:00.000001"},
	} {
		if got := c.iv.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.iv, got, c.want)
		}
	}
}

// TestIntervalAggregatesMatchPostgres computes AVG, SUM, MIN and MAX of
// timestamp differences in PostgreSQL itself and checks that Interval
// reproduces each one's text from the microseconds alone: the engine's
// SQLite answers rest on it.
func TestIntervalAggregatesMatchPostgres(t *testing.T) {
	db, err := sql.Open("pgx", storetest.PostgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(7, 9))
	const sec, day = int64(1_000_000), int64(86_400_000_000)
	durations := func(n int, negative bool) []int64 {
		out := make([]int64, n)
		for i := range out {
			switch rng.IntN(5) {
			case 0: // sub-second, to the microsecond
				out[i] = rng.Int64N(sec)
			case 1: // minutes, whole seconds (Kubernetes times)
				out[i] = rng.Int64N(3600) * sec
			case 2: // hours with a fraction
				out[i] = rng.Int64N(24 * 3600 * sec)
			case 3: // days
				out[i] = rng.Int64N(10 * day)
			case 4: // exactly whole days and hours
				out[i] = rng.Int64N(5)*day + rng.Int64N(24)*3600*sec
			}
			if negative && rng.IntN(3) == 0 {
				out[i] = -out[i]
			}
		}
		return out
	}
	var sets [][]int64
	sets = append(sets, []int64{485*sec + 475610}, []int64{day, day + 1, 3}, []int64{sec, 2 * sec, 2 * sec})
	for i := range 400 {
		sets = append(sets, durations(1+rng.IntN(60), i%4 == 0))
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, set := range sets {
		var pgAvg, pgSum, pgMin, pgMax string
		// Each difference is taken between real timestamptz values, as the
		// Summary API takes completionTime - startTime.
		err := db.QueryRow(`SELECT AVG(d)::text, SUM(d)::text, MIN(d)::text, MAX(d)::text FROM (
			SELECT ($1::timestamptz + v * interval '1 microsecond') - $1::timestamptz AS d FROM unnest($2::bigint[]) AS v) AS x`,
			start, set).Scan(&pgAvg, &pgSum, &pgMin, &pgMax)
		if err != nil {
			t.Fatal(err)
		}
		var sum store.Interval
		lo, hi := set[0], set[0]
		for _, us := range set {
			iv := store.IntervalOf(us)
			sum.Days += iv.Days
			sum.Micros += iv.Micros
			lo, hi = min(lo, us), max(hi, us)
		}
		got := [4]string{sum.Div(int64(len(set))).String(), sum.String(), store.IntervalOf(lo).String(), store.IntervalOf(hi).String()}
		want := [4]string{pgAvg, pgSum, pgMin, pgMax}
		if got != want {
			t.Errorf("durations %v:\n got (avg, sum, min, max) %q\nwant %q", set, got, want)
		}
	}
}
