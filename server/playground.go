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
# The newest PipelineRuns of every namespace, with their TaskRuns and steps:
query Dashboard {
  records(parent: "-", where: {dataTypes: ["tekton.dev/v1.PipelineRun"]}, first: 10) {
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
