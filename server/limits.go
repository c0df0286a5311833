package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/annals-dev/annals/graph"
)

// maxRepeatedFieldPairs bounds the pairs of same-named fields at one place
// of a query (say `name` selected 300 times under records.nodes). GraphQL
// validation compares every such pair, so its work grows with the square of
// the repetitions: 8,000 repeated fields cost seconds of CPU. 50,000 pairs
// (one field repeated about 316 times) keeps it to a few milliseconds.
const maxRepeatedFieldPairs = 50_000

// shapeLimit refuses documents that nest too deep, alias too many fields
// (aliases let one request repeat an expensive field), select too many
// fields once their fragments are expanded, or repeat one field so often
// that validating it is costly. It runs on the parsed document before
// gqlgen validates it or computes its cost, because those walks expand
// every fragment spread (a fragment spreading the next one twice, 25 deep,
// costs 2^25 of them) and compare repeated fields pairwise. Its own walks
// are linear in the document: each fragment definition is measured once
// and its measure reused wherever it is spread.
type shapeLimit struct {
	maxDepth, maxAliases, maxSelections int
	// parsed holds documents gqlgen has already parsed and validated: each
	// passed this check on its way in, so it is not measured again.
	parsed graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = shapeLimit{}

func (shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimit) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if params.Query == "" {
		return nil // gqlgen answers that no query was given
	}
	if l.parsed != nil {
		if _, ok := l.parsed.Get(ctx, params.Query); ok {
			return nil
		}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: params.Query})
	if err != nil {
		return nil // gqlgen parses it again and reports the error with its code
	}
	return l.check(measure(doc, l.maxSelections))
}

func (l shapeLimit) check(m shape) *gqlerror.Error {
	refuse := func(format string, args ...any) *gqlerror.Error {
		err := gqlerror.Errorf(format, args...)
		err.Extensions = map[string]any{"code": graph.CodeInvalidArgument}
		return err
	}
	switch {
	case m.selections > l.maxSelections:
		return refuse("the query selects %s fields once its fragments are expanded (a fragment counts again each time it is spread); "+
			"the limit is %d: spread fragments fewer times, or split the query", countString(m.selections), l.maxSelections)
	case m.depth > l.maxDepth:
		return refuse("the query nests %d levels deep; the limit is %d: split it into several queries", m.depth, l.maxDepth)
	case m.aliases > l.maxAliases:
		return refuse("the query has %s aliased fields; the limit is %d: split it into several queries", countString(m.aliases), l.maxAliases)
	case m.repeatedPairs > maxRepeatedFieldPairs:
		return refuse("the query selects %q %d times at %s (fragments included); select each field once there",
			m.mostRepeated, m.mostRepeatedCount, m.mostRepeatedAt)
	}
	return nil
}

// countString prints a count that may have been capped while measuring.
func countString(n int) string {
	if n >= countCap {
		return fmt.Sprintf("more than %d", countCap)
	}
	return fmt.Sprint(n)
}

// countCap is where measures stop growing: a fragment bomb would otherwise
// overflow them.
const countCap = 1 << 40

func capAdd(a, b int) int { return min(a+b, countCap) }

// shape is what shapeLimit checks of a document.
type shape struct {
	depth      int // deepest field nesting of any operation
	aliases    int // aliased fields of the operation with the most, fragments expanded
	selections int // selections of every operation (and fragment no operation spreads), fragments expanded
	// Pairs of same-named fields at one merged place, summed over places,
	// and the place with the most of them; measured only when selections
	// is within its limit (the walk visits every expanded selection).
	repeatedPairs                int
	mostRepeated, mostRepeatedAt string
	mostRepeatedCount            int
	visits                       int // selections visited by the walks, for tests
}

// fragmentShape is the measure of one fragment definition.
type fragmentShape struct {
	depth, aliases, selections int
	state                      int // 0 unmeasured, 1 being measured (a cycle: validation refuses it), 2 done
}

type measurer struct {
	defs   map[string]*ast.FragmentDefinition
	frags  map[string]*fragmentShape
	visits int
}

// measure measures doc. It visits each selection of the document once,
// then, if the expanded document holds at most maxSelections selections,
// walks it expanded to count repeated fields.
func measure(doc *ast.QueryDocument, maxSelections int) shape {
	m := &measurer{defs: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)), frags: map[string]*fragmentShape{}}
	for _, f := range doc.Fragments {
		if _, dup := m.defs[f.Name]; !dup {
			m.defs[f.Name] = f // a duplicate name is a validation error
		}
	}
	var s shape
	for _, op := range doc.Operations {
		d, a, n := m.set(op.SelectionSet)
		s.depth, s.aliases, s.selections = max(s.depth, d), max(s.aliases, a), capAdd(s.selections, n)
	}
	// Validation also walks fragments no operation spreads (before it
	// refuses them as unused): they count as if spread once.
	var unspread []*ast.FragmentDefinition
	for _, f := range doc.Fragments {
		if m.frags[f.Name] == nil {
			unspread = append(unspread, f)
		}
	}
	for _, f := range unspread {
		_, _, n := m.set(f.SelectionSet)
		s.selections = capAdd(s.selections, n)
	}
	if s.selections <= maxSelections {
		r := repeats{m: m, at: map[string]int{}, spread: map[string]bool{}, onStack: map[string]bool{}}
		for _, op := range doc.Operations {
			r.walk(op.SelectionSet, string(op.Operation))
		}
		for _, f := range unspread {
			r.walk(f.SelectionSet, "fragment "+f.Name)
		}
		// The most repeated field is named; among equals the shallowest,
		// then the first in byte order, so that the message does not
		// depend on map order.
		best := ""
		for place, n := range r.at {
			s.repeatedPairs = capAdd(s.repeatedPairs, n*(n-1)/2)
			if n > s.mostRepeatedCount || n == s.mostRepeatedCount && (len(place) < len(best) || len(place) == len(best) && place < best) {
				at, name, _ := cutLast(place, ".")
				s.mostRepeated, s.mostRepeatedAt, s.mostRepeatedCount, best = name, at, n, place
			}
		}
	}
	s.visits = m.visits
	return s
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

// set measures a selection set: its deepest field nesting, aliased fields
// and selections, each fragment measured once.
func (m *measurer) set(set ast.SelectionSet) (depth, aliases, selections int) {
	for _, sel := range set {
		m.visits++
		var d, a, n int
		switch s := sel.(type) {
		case *ast.Field:
			d, a, n = m.set(s.SelectionSet)
			d++
			if s.Alias != "" && s.Alias != s.Name {
				a = capAdd(a, 1)
			}
		case *ast.InlineFragment:
			d, a, n = m.set(s.SelectionSet)
		case *ast.FragmentSpread:
			f := m.fragment(s.Name)
			d, a, n = f.depth, f.aliases, f.selections
		}
		depth, aliases, selections = max(depth, d), capAdd(aliases, a), capAdd(selections, capAdd(n, 1))
	}
	return depth, aliases, selections
}

func (m *measurer) fragment(name string) *fragmentShape {
	f := m.frags[name]
	if f == nil {
		f = &fragmentShape{}
		m.frags[name] = f
	}
	if f.state != 0 {
		return f // measured, or a cycle (counted as empty)
	}
	def := m.defs[name]
	if def == nil {
		f.state = 2 // unknown: validation refuses it
		return f
	}
	f.state = 1
	f.depth, f.aliases, f.selections = m.set(def.SelectionSet)
	f.state = 2
	return f
}

// repeats counts fields by merged place: the response names leading to
// them, fragments expanded, as validation compares them. Like validation
// (and execution), it expands a fragment once per place however often it
// is spread there.
type repeats struct {
	m       *measurer
	at      map[string]int
	spread  map[string]bool // place and fragment name: expanded there already
	onStack map[string]bool
}

func (r *repeats) walk(set ast.SelectionSet, path string) {
	for _, sel := range set {
		r.m.visits++
		switch s := sel.(type) {
		case *ast.Field:
			name := s.Alias
			if name == "" {
				name = s.Name
			}
			place := path + "." + name
			r.at[place]++
			r.walk(s.SelectionSet, place)
		case *ast.InlineFragment:
			r.walk(s.SelectionSet, path)
		case *ast.FragmentSpread:
			def := r.m.defs[s.Name]
			key := path + "\x00" + s.Name
			if def == nil || r.onStack[s.Name] || r.spread[key] {
				continue
			}
			r.spread[key], r.onStack[s.Name] = true, true
			r.walk(def.SelectionSet, path)
			r.onStack[s.Name] = false
		}
	}
}
