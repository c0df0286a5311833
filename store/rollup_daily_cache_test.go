package store

import "testing"

// TestDayCacheBudget: the cached days never take more than the budget,
// evictions give their bytes back, a day too large for a quarter of the
// budget is not kept, and a day is served only at the version it was read.
func TestDayCacheBudget(t *testing.T) {
	c := newDayCache(100_000)
	day := func(values int) *dayCells {
		cell := &dayCell{lists: dailyLists{durations: make([]int64, values)}}
		return &dayCells{version: 7, cells: []*dayCell{cell}, bytes: 8 * int64(values)}
	}
	for d := range int64(50) {
		c.put("scope", d, day(1_000))
		if got := c.bytes.Load(); got > c.budget {
			t.Fatalf("after %d days: %d bytes held, budget %d", d+1, got, c.budget)
		}
	}
	if c.get("scope", 49, 7) == nil || c.get("scope", 0, 7) != nil {
		t.Error("the newest day should be held and the oldest evicted")
	}
	if c.get("scope", 49, 8) != nil {
		t.Error("a day was served at another version than it was read at")
	}
	checkCount := func(when string) {
		t.Helper()
		var sum int64
		for _, k := range c.entries.Keys() {
			d, _ := c.entries.Peek(k)
			sum += d.bytes
		}
		if sum != c.bytes.Load() || sum > c.budget {
			t.Errorf("%s: entries hold %d bytes, the count says %d, budget %d", when, sum, c.bytes.Load(), c.budget)
		}
	}
	checkCount("after filling")
	c.put("scope", 100, day(4_000)) // 32,000 bytes: more than a quarter
	if c.get("scope", 100, 7) != nil {
		t.Error("a day larger than a quarter of the budget was kept")
	}
	c.put("scope", 49, day(10)) // replaces the day: its old bytes are given back
	checkCount("after replacing a day")
	var off *dayCache = newDayCache(-1)
	off.put("scope", 1, day(1))
	if off.get("scope", 1, 7) != nil {
		t.Error("a disabled cache held a day")
	}
}
