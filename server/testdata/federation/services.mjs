// A second subgraph, as a developer portal would have: Services that point
// at their recent runs, which are Annals Records (referenced by name).
// Usage: node services.mjs PORT RECORD_NAME...
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import gql from 'graphql-tag';

const [port, ...recordNames] = process.argv.slice(2);

const typeDefs = gql`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

  type Query {
    services: [Service!]!
  }

  type Service {
    name: String!
    recentRuns: [Record!]!
  }

  type Record @key(fields: "name", resolvable: false) {
    name: String!
  }
`;

const resolvers = {
  Query: {
    services: () => [{ name: 'web', recentRuns: recordNames.map((name) => ({ __typename: 'Record', name })) }],
  },
};

const server = new ApolloServer({ schema: buildSubgraphSchema({ typeDefs, resolvers }) });
const { url } = await startStandaloneServer(server, { listen: { port: Number(port), host: '127.0.0.1' } });
console.log(`services subgraph ready at ${url}`);
