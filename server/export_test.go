package server

import (
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// MeasureQuery measures a document as the shape limit does and returns
// the selections it counted and the selections its walks visited.
func MeasureQuery(query string, maxSelections int) (selections, visits int, err error) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return 0, 0, err
	}
	m := measure(doc, maxSelections)
	return m.selections, m.visits, nil
}

// PlaygroundExamples are the operations the playground opens as tabs.
var PlaygroundExamples = playgroundExamples

// PlaygroundTabs are the playground's tabs, with their variables, at now.
func PlaygroundTabs(now time.Time) []playgroundTab { return playgroundTabs(now) }
