package filter

import (
	"fmt"
	"strings"
)

// PositionError is an error about one place of a filter: its message says
// what is wrong once, and Line and Column (1-based) and Context (the line
// with a caret under the column) let a client point at it.
type PositionError struct {
	Message      string
	Line, Column int
	Context      string
}

func (e *PositionError) Error() string {
	if e.Line == 1 {
		return fmt.Sprintf("%s: %s (at column %d)", ErrInvalid, e.Message, e.Column)
	}
	return fmt.Sprintf("%s: %s (at line %d, column %d)", ErrInvalid, e.Message, e.Line, e.Column)
}

func (e *PositionError) Unwrap() error { return ErrInvalid }

// positionError builds a PositionError at a 1-based line and column of src.
func positionError(src string, line, column int, message string) *PositionError {
	lines := strings.Split(src, "\n")
	context := ""
	if line >= 1 && line <= len(lines) {
		text := lines[line-1]
		context = text + "\n" + strings.Repeat(" ", max(0, column-1)) + "^"
	}
	return &PositionError{Message: message, Line: line, Column: column, Context: context}
}
