// A real Apollo gateway composing Annals with the services subgraph.
// Usage: node gateway.mjs PORT ANNALS_URL SERVICES_URL
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { ApolloGateway, IntrospectAndCompose } from '@apollo/gateway';

const [port, annalsURL, servicesURL] = process.argv.slice(2);

const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({
    subgraphs: [
      { name: 'annals', url: annalsURL },
      { name: 'services', url: servicesURL },
    ],
  }),
});

const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, { listen: { port: Number(port), host: '127.0.0.1' } });
console.log(`gateway ready at ${url}`);
