package filter

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
)

// Regular expressions of matches() are RE2, as CEL defines them: no
// back-references or look-around, whose matching can take exponential time.
// PostgreSQL's dialect differs (it has back-references; \b is a backspace
// there; . and [^x] match a newline unless told otherwise; counted
// repetition stops at 255), so the pattern is never handed over as written:
// it is parsed with Go's RE2 parser, which refuses what RE2 lacks, and the
// parsed form is written out again in constructs that mean the same in both.

// maxRegexLength bounds one pattern; the filter as a whole is bounded too.
const maxRegexLength = 512

// postgresMaxRepeat is the largest count PostgreSQL accepts in {m,n}.
const postgresMaxRepeat = 255

// wordChar is RE2's \w (ASCII), for word boundaries.
const wordChar = `[0-9A-Za-z_]`

// checkRegex parses pattern as RE2 and explains a refusal.
func checkRegex(pattern string) (*syntax.Regexp, error) {
	if len(pattern) > maxRegexLength {
		return nil, fmt.Errorf("the regular expression is %d bytes long; the limit is %d", len(pattern), maxRegexLength)
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		var serr *syntax.Error
		msg := err.Error()
		if ok := asSyntaxError(err, &serr); ok {
			msg = string(serr.Code) + " " + "`" + serr.Expr + "`"
		}
		return nil, fmt.Errorf("the regular expression %q is not RE2 syntax (%s): matches() takes RE2, which has no back-references (\\1), look-ahead or look-behind; "+
			"see https://github.com/google/re2/wiki/Syntax", pattern, msg)
	}
	return re, nil
}

func asSyntaxError(err error, target **syntax.Error) bool {
	se, ok := err.(*syntax.Error)
	if ok {
		*target = se
	}
	return ok
}

// PostgresRegex translates an RE2 pattern to a PostgreSQL advanced regular
// expression matching the same strings, or says why it cannot.
func PostgresRegex(pattern string) (string, error) {
	re, err := checkRegex(pattern)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	// ***: the rest is an advanced regular expression whatever the server's
	// regex_flavor; (?) with no options keeps PostgreSQL's defaults, where
	// ^ and $ anchor the whole text.
	b.WriteString("***:")
	if err := writePostgres(&b, re, pattern); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writePostgres(b *strings.Builder, re *syntax.Regexp, pattern string) error {
	group := func(subs ...*syntax.Regexp) error {
		b.WriteString("(?:")
		for _, s := range subs {
			if err := writePostgres(b, s, pattern); err != nil {
				return err
			}
		}
		b.WriteString(")")
		return nil
	}
	switch re.Op {
	case syntax.OpNoMatch:
		b.WriteString("(?!)") // an empty negative look-ahead never matches
	case syntax.OpEmptyMatch:
		b.WriteString("(?:)")
	case syntax.OpLiteral:
		b.WriteString("(?:")
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				writeClass(b, foldRanges(r), false)
			} else {
				writeRune(b, r)
			}
		}
		b.WriteString(")")
	case syntax.OpCharClass:
		writeClass(b, re.Rune, false)
	case syntax.OpAnyCharNotNL:
		b.WriteString(`[^\n]`)
	case syntax.OpAnyChar:
		b.WriteString(`(?:.|\n)`)
	case syntax.OpBeginLine:
		b.WriteString(`(?:^|(?<=\n))`)
	case syntax.OpEndLine:
		b.WriteString(`(?:$|(?=\n))`)
	case syntax.OpBeginText:
		b.WriteString("^")
	case syntax.OpEndText:
		b.WriteString("$")
	case syntax.OpWordBoundary:
		b.WriteString(`(?:(?<=` + wordChar + `)(?!` + wordChar + `)|(?<!` + wordChar + `)(?=` + wordChar + `))`)
	case syntax.OpNoWordBoundary:
		b.WriteString(`(?:(?<=` + wordChar + `)(?=` + wordChar + `)|(?<!` + wordChar + `)(?!` + wordChar + `))`)
	case syntax.OpCapture:
		return group(re.Sub...)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		// Greediness changes which text a match covers, never whether
		// there is one: matches() only asks the latter.
		if err := group(re.Sub...); err != nil {
			return err
		}
		b.WriteString(map[syntax.Op]string{syntax.OpStar: "*", syntax.OpPlus: "+", syntax.OpQuest: "?"}[re.Op])
	case syntax.OpRepeat:
		if re.Min > postgresMaxRepeat || re.Max > postgresMaxRepeat {
			return fmt.Errorf("the regular expression %q repeats a part up to %d times; the limit is %d", pattern, max(re.Min, re.Max), postgresMaxRepeat)
		}
		if err := group(re.Sub...); err != nil {
			return err
		}
		switch {
		case re.Max == -1:
			fmt.Fprintf(b, "{%d,}", re.Min)
		case re.Min == re.Max:
			fmt.Fprintf(b, "{%d}", re.Min)
		default:
			fmt.Fprintf(b, "{%d,%d}", re.Min, re.Max)
		}
	case syntax.OpConcat:
		return group(re.Sub...)
	case syntax.OpAlternate:
		b.WriteString("(?:")
		for i, s := range re.Sub {
			if i > 0 {
				b.WriteString("|")
			}
			if err := writePostgres(b, s, pattern); err != nil {
				return err
			}
		}
		b.WriteString(")")
	default:
		return fmt.Errorf("the regular expression %q uses a construct (%v) Annals cannot run on PostgreSQL", pattern, re.Op)
	}
	return nil
}

// foldRanges is the class of runes equal to r under simple case folding.
func foldRanges(r rune) []rune {
	out := []rune{r, r}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		out = append(out, f, f)
	}
	return out
}

// writeClass writes a bracket expression of the rune ranges (lo, hi pairs).
// NUL is left out: PostgreSQL text cannot hold it.
func writeClass(b *strings.Builder, ranges []rune, negate bool) {
	var parts []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := max(ranges[i], 1), ranges[i+1]
		if lo <= hi {
			parts = append(parts, lo, hi)
		}
	}
	if len(parts) == 0 {
		b.WriteString("(?!)")
		return
	}
	b.WriteString("[")
	if negate {
		b.WriteString("^")
	}
	for i := 0; i < len(parts); i += 2 {
		writeRune(b, parts[i])
		if parts[i+1] != parts[i] {
			b.WriteString("-")
			writeRune(b, parts[i+1])
		}
	}
	b.WriteString("]")
}

// writeRune writes r so that it stands for itself: ASCII letters and digits
// as they are, anything else as a \u or \U escape, which PostgreSQL reads
// alike in and out of brackets.
func writeRune(b *strings.Builder, r rune) {
	switch {
	case r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		b.WriteRune(r)
	case r <= 0xFFFF:
		fmt.Fprintf(b, `\u%04x`, r)
	default:
		fmt.Fprintf(b, `\U%08x`, r)
	}
}
