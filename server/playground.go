package server

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// The example operations the playground opens, one tab each, in file name
// order. TestPlaygroundExamples validates them against the schema and runs
// them.
//
//go:embed examples/*.graphql
var exampleFiles embed.FS

// playgroundExample is one tab of the playground: one named operation.
type playgroundExample struct {
	File      string
	Operation string // its name
	Query     string // the file, comments included
}

var playgroundExamples = mustLoadExamples()

func mustLoadExamples() []playgroundExample {
	names, err := fs.Glob(exampleFiles, "examples/*.graphql")
	if err != nil {
		panic(err)
	}
	var examples []playgroundExample
	for _, name := range names {
		content, err := fs.ReadFile(exampleFiles, name)
		if err != nil {
			panic(err)
		}
		doc, gqlErr := parser.ParseQuery(&ast.Source{Name: name, Input: string(content)})
		if gqlErr != nil || len(doc.Operations) != 1 || doc.Operations[0].Name == "" {
			panic(fmt.Sprintf("playground example %s must hold one named operation: %v", name, gqlErr))
		}
		examples = append(examples, playgroundExample{File: path.Base(name), Operation: doc.Operations[0].Name, Query: string(content)})
	}
	return examples
}

// exampleVariables gives an example its variables when the page is
// served: "the last day" is the day before the page was opened.
var exampleVariables = map[string]func(now time.Time) map[string]any{
	"FailedRuns": func(now time.Time) map[string]any {
		return map[string]any{"since": now.Add(-24 * time.Hour).UTC().Format(time.RFC3339)}
	},
}

// playgroundTab is GraphiQL's tab definition (defaultTabs).
type playgroundTab struct {
	Query     string `json:"query"`
	Variables string `json:"variables,omitempty"` // JSON text, as the Variables editor shows it
}

// playgroundTabs are the tabs the playground opens with at now.
func playgroundTabs(now time.Time) []playgroundTab {
	tabs := make([]playgroundTab, 0, len(playgroundExamples))
	for _, e := range playgroundExamples {
		tab := playgroundTab{Query: e.Query}
		if vars := exampleVariables[e.Operation]; vars != nil {
			text, err := json.MarshalIndent(vars(now), "", "  ")
			if err != nil {
				panic(err) // maps of strings always marshal
			}
			tab.Variables = string(text)
		}
		tabs = append(tabs, tab)
	}
	return tabs
}

// The page loads one script and one stylesheet, both bundled in the
// binary (server/assets/src), so the playground works without internet
// access. Its configuration is JSON data, not script: the page runs no
// inline script.
var playgroundPage = template.Must(template.New("playground").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Annals GraphQL playground</title>
<link rel="icon" type="image/svg+xml" href="{{.Favicon}}">
<link rel="stylesheet" href="{{.CSS}}">
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script type="application/json" id="annals-playground">{{.Config}}</script>
<script src="{{.JS}}"></script>
</body>
</html>
`))

func playground(w http.ResponseWriter, r *http.Request) {
	// json.Marshal escapes <, > and &: the JSON cannot end the script element.
	config, err := json.Marshal(map[string]any{"tabs": playgroundTabs(time.Now())})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var page bytes.Buffer
	err = playgroundPage.Execute(&page, map[string]any{
		"Favicon": playgroundAssets.url("favicon.svg"),
		"CSS":     playgroundAssets.url("playground.css"),
		"JS":      playgroundAssets.url("playground.js"),
		"Config":  template.JS(config),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page names the current assets and dates its examples: always ask.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	w.Write(page.Bytes())
}
