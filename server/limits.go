package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/annals-dev/annals/graph"
)

// shapeLimit refuses operations that nest too deep or alias too many
// fields (aliases let one request repeat an expensive field), before any
// resolver runs. The cost limit comes after it.
type shapeLimit struct{ maxDepth, maxAliases int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimit{}

func (shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	refuse := func(format string, args ...any) *gqlerror.Error {
		err := gqlerror.Errorf(format, args...)
		err.Extensions = map[string]any{"code": graph.CodeInvalidArgument}
		return err
	}
	if depth := selectionDepth(oc.Operation.SelectionSet, 0, l.maxDepth); depth > l.maxDepth {
		return refuse("the query nests %d levels deep or more; the limit is %d: split it into several queries", depth, l.maxDepth)
	}
	if n := countAliases(oc.Operation.SelectionSet, l.maxAliases); n > l.maxAliases {
		return refuse("the query has more than %d aliased fields; the limit is %d: split it into several queries", l.maxAliases, l.maxAliases)
	}
	return nil
}

func selectionDepth(set ast.SelectionSet, depth, limit int) int {
	if depth > limit {
		return depth // deep enough to refuse; also stops fragment cycles
	}
	deepest := depth
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				d = depth + 1
			} else {
				d = selectionDepth(s.SelectionSet, depth+1, limit)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, depth, limit)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				d = selectionDepth(s.Definition.SelectionSet, depth, limit)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// countAliases counts aliased fields as executed (a fragment counts each
// time it is spread), stopping once past limit.
func countAliases(set ast.SelectionSet, limit int) int {
	n := 0
	var walk func(ast.SelectionSet, int)
	walk = func(set ast.SelectionSet, depth int) {
		if n > limit || depth > 64 {
			return
		}
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if s.Alias != "" && s.Alias != s.Name {
					n++
				}
				walk(s.SelectionSet, depth+1)
			case *ast.InlineFragment:
				walk(s.SelectionSet, depth+1)
			case *ast.FragmentSpread:
				if s.Definition != nil {
					walk(s.Definition.SelectionSet, depth+1)
				}
			}
		}
	}
	walk(set, 0)
	return n
}
