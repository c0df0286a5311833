package store

import (
	"math"
	"strconv"
	"strings"
)

// Interval is a PostgreSQL interval without months: whole days and
// microseconds, kept apart as PostgreSQL keeps them, so that sums and
// averages of durations render exactly as PostgreSQL renders them
// ("1 day 02:03:04", "4 days 452:35:14"), whichever database computed them.
type Interval struct {
	Days   int64
	Micros int64
}

// IntervalOf is the interval PostgreSQL gives for a difference of two
// timestamps of us microseconds: whole days, and the rest (justify_hours).
// Division truncates toward zero, so both parts take the sign of us.
func IntervalOf(us int64) Interval {
	return Interval{Days: us / usecsPerDay, Micros: us % usecsPerDay}
}

// TotalMicros is the length of the interval, days counted as 24 hours: what
// PostgreSQL compares intervals by.
func (iv Interval) TotalMicros() int64 { return iv.Days*usecsPerDay + iv.Micros }

// Div divides the interval by n as PostgreSQL's interval_div does (AVG of
// intervals divides their sum by the count): the day part in floating point,
// its fraction carried into the time part rounded to the microsecond. The
// explicit float64 conversions keep the compiler from fusing a multiply and
// an add, which would round differently from PostgreSQL's C.
func (iv Interval) Div(n int64) Interval {
	factor := float64(n)
	days := float64(iv.Days) / factor
	day := int64(days)
	secRemainder := tsRound(float64((days - float64(day)) * 86400))
	if math.Abs(secRemainder) >= 86400 {
		carry := int64(secRemainder / 86400)
		day += carry
		secRemainder -= float64(carry * 86400)
	}
	micros := math.RoundToEven(float64(iv.Micros)/factor + float64(secRemainder*1e6))
	return Interval{Days: day, Micros: int64(micros)}
}

// tsRound rounds to microseconds as PostgreSQL's TSROUND does.
func tsRound(x float64) float64 { return math.RoundToEven(float64(x*1e6)) / 1e6 }

// String renders the interval as PostgreSQL does with its default
// IntervalStyle (postgres): "[N day[s] ][-]HH:MM:SS[.ffffff]", hours past
// 24 when the time part is, fractional seconds without trailing zeros, and
// "00:00:00" for zero.
func (iv Interval) String() string {
	var b strings.Builder
	isZero, isBefore := true, false
	if iv.Days != 0 {
		b.WriteString(strconv.FormatInt(iv.Days, 10))
		b.WriteString(" day")
		if iv.Days != 1 {
			b.WriteByte('s')
		}
		isZero, isBefore = false, iv.Days < 0
	}
	if !isZero && iv.Micros == 0 {
		return b.String()
	}
	hour := iv.Micros / 3_600_000_000
	rest := iv.Micros - hour*3_600_000_000
	minute := rest / 60_000_000
	rest -= minute * 60_000_000
	sec := rest / 1_000_000
	fsec := rest - sec*1_000_000
	if !isZero {
		b.WriteByte(' ')
	}
	switch {
	case iv.Micros < 0:
		b.WriteByte('-')
	case isBefore:
		b.WriteByte('+')
	}
	pad2(&b, abs(hour))
	b.WriteByte(':')
	pad2(&b, abs(minute))
	b.WriteByte(':')
	pad2(&b, abs(sec))
	if fsec != 0 {
		frac := strconv.FormatInt(abs(fsec)+1_000_000, 10)[1:] // six digits, zero-padded
		b.WriteByte('.')
		b.WriteString(strings.TrimRight(frac, "0"))
	}
	return b.String()
}

func pad2(b *strings.Builder, v int64) {
	if v < 10 {
		b.WriteByte('0')
	}
	b.WriteString(strconv.FormatInt(v, 10))
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
