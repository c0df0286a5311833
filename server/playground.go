package server

import (
	"net/http"
)

// playgroundPage loads GraphiQL and React from /assets, bundled in the
// binary, so the playground works without internet access.
const playgroundPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Annals GraphQL playground</title>
<link rel="stylesheet" href="/assets/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style>
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script src="/assets/react.production.min.js"></script>
<script src="/assets/react-dom.production.min.js"></script>
<script src="/assets/graphiql.min.js"></script>
<script src="/assets/graphql-ws.min.js"></script>
<script>
// Subscriptions go over WebSocket; the token, if any, is the Authorization
// header set in the playground's Headers tab.
const wsClient = graphqlWs.createClient({
  url: location.origin.replace(/^http/, "ws") + "/graphql",
  lazy: true,
  connectionParams: () => {
    try {
      const h = JSON.parse(localStorage.getItem("graphiql:headers") || "{}");
      return h.Authorization ? { Authorization: h.Authorization } : {};
    } catch (e) {
      return {};
    }
  },
});
const fetcher = GraphiQL.createFetcher({ url: "/graphql", wsClient });
const defaultQuery = ` + "`" + `# Welcome to Annals: the history of your Tekton runs.
# The PipelineRuns of every namespace, running ones first, then the latest
# started, with their TaskRuns and steps:
query Dashboard {
  records(parent: "-", where: {kinds: [PIPELINE_RUN]}, first: 10,
          orderBy: {field: START_TIME, direction: DESC, unfinishedFirst: true}) {
    totalCount
    edges {
      node {
        name
        pipelineRun {
          name status reason startTime duration pipelineName
          taskRuns(first: 20) {
            nodes {
              taskRun { name status duration steps { name exitCode } }
            }
          }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}

# Trends: PipelineRuns per Pipeline and day (in your time zone), with success
# rate and duration percentiles (seconds); empty days filled with zeros.
query Trends {
  recordStats(parent: "-", where: {dataTypes: ["tekton.dev/v1.PipelineRun", "tekton.dev/v1beta1.PipelineRun"]},
              groupBy: [{dimension: PIPELINE}, {dimension: TIME, timeField: START, unit: DAY}],
              timeZone: "UTC", fill: true, first: 500) {
    totalGroups
    groups {
      key { dimension value }
      count successRate
      duration { p50 p95 max }
      queueTime { avg p95 }
    }
  }
}

# Failure hot spots: the Tasks that fail most, and their share of failures.
query HotSpots {
  recordStats(parent: "-", where: {dataTypes: ["tekton.dev/v1.TaskRun", "tekton.dev/v1beta1.TaskRun"]},
              groupBy: [{dimension: PIPELINE}, {dimension: TASK}],
              orderBy: [{metric: FAILED}], first: 10) {
    groups { key { value } count statusCounts { failed } successRate failureShare }
  }
}

# Values for a filter dropdown: Pipelines with their number of Records.
query PipelineFacet {
  recordFacets(parent: "-", dimension: PIPELINE, prefix: "", first: 20) { value count }
}
` + "`" + `;
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, { fetcher, defaultQuery, defaultEditorToolsVisibility: true }));
</script>
</body>
</html>
`

func playground(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:")
	w.Write([]byte(playgroundPage))
}
