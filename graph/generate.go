// Package graph is the GraphQL schema of Annals and its resolvers: it
// translates GraphQL requests into store calls, batching nested fields
// through per-request loaders, and store results back into the graph.
package graph

//go:generate go tool gqlgen generate
