// The Annals playground: GraphiQL with the Explorer plugin, opening on the
// example tabs that the server puts in the page (#annals-playground, JSON).
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { GraphiQL } from "graphiql";
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/dist/style.css";
import "./page.css";

const config = JSON.parse(document.getElementById("annals-playground").textContent);

// Queries and mutations go over HTTP. Each subscription opens a WebSocket
// whose connection_init payload carries the Headers tab (browsers cannot
// set headers on a WebSocket): {"Authorization": "Bearer ..."} there
// authenticates subscriptions too.
const fetcher = createGraphiQLFetcher({
  url: "/graphql",
  subscriptionUrl: location.origin.replace(/^http/, "ws") + "/graphql",
});

const explorer = explorerPlugin({ showAttribution: false });

createRoot(document.getElementById("graphiql")).render(
  createElement(GraphiQL, {
    fetcher,
    plugins: [explorer],
    defaultTabs: config.tabs,
    defaultEditorToolsVisibility: true,
  }),
);
