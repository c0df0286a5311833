// Opens the playground in headless Chromium and uses it as a person would:
// runs the tab it opens on, switches to another tab and runs that, opens
// the Explorer and builds a query by clicking. Fails on any console error
// and on a bundle that came uncompressed. For server/browser_test.go.
//
//   node check.mjs <playground URL> <chromium executable> <text the Dashboard result must hold>
import { chromium } from "playwright-core";

const [url, executablePath, expectInDashboard] = process.argv.slice(2);
const problems = [];
// 422 answers on the console, and the runs that retried one: GraphiQL
// naming the previous tab's operation (see run below) is the only 422
// allowed, once per retry.
const refused = [];
let retried = 0;
// Seconds since node started (loading Playwright included).
const step = (what) => console.log(`${process.uptime().toFixed(1)}s ${what}`);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
step("Chromium started");
try {
  const page = await browser.newPage();
  // Generous: on a busy CI machine parsing the bundle alone can take
  // seconds. A failure shows which step did not finish.
  page.setDefaultTimeout(90000);
  page.on("console", (msg) => {
    // The Explorer cannot show a list literal of enums (kinds: [PIPELINE_RUN])
    // in its argument form and says so on the console; the query itself is
    // untouched and runs. Anything else is a failure.
    if (msg.type() === "error" && msg.text().includes("status of 422")) {
      refused.push(`console error: ${msg.text()}`);
    } else if (msg.type() === "error" && !msg.text().startsWith("arg mismatch between arg and selection")) {
      problems.push(`console error: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`uncaught exception: ${err.message}`));
  const assets = [];
  page.on("response", async (resp) => {
    if (new URL(resp.url()).pathname.startsWith("/assets/")) {
      const headers = await resp.allHeaders();
      assets.push({ path: new URL(resp.url()).pathname, status: resp.status(), encoding: headers["content-encoding"] || "" });
    }
  });

  await page.goto(url, { waitUntil: "load" });
  step("page loaded");
  // The schema has arrived when the query editor stops flagging fields.
  await page.locator(".graphiql-container").waitFor();

  // The Variables and results editors are CodeMirror 5 instances; their
  // whole text is read from the instance (the DOM holds only visible lines).
  const responseText = () =>
    page.evaluate(() => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "");
  const queryText = () =>
    page.evaluate(() => document.querySelector(".graphiql-query-editor .CodeMirror")?.CodeMirror.getValue() ?? "");
  const run = async (mustHold) => {
    let text = "";
    // GraphiQL picks the operation to send from the editor a moment after a
    // tab switch; on a busy machine the first click may still name the
    // previous tab's operation, which the server refuses as not found.
    for (let attempt = 0; attempt < 5; attempt++) {
      await page.evaluate(() => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.setValue(""));
      await page.locator(".graphiql-execute-button").click();
      await page.waitForFunction(
        (s) => {
          const v = document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "";
          return v.includes(s) || v.includes("GRAPHQL_VALIDATION_FAILED");
        },
        mustHold,
      ).catch(() => {});
      text = await responseText();
      if (!(text.includes("GRAPHQL_VALIDATION_FAILED") && /operation \w+ not found/.test(text))) break;
      retried++;
      await page.waitForTimeout(500);
    }
    if (!text.includes(mustHold)) throw new Error(`result lacks ${JSON.stringify(mustHold)}:\n${text.slice(0, 2000)}`);
    const result = JSON.parse(text);
    if (result.errors) throw new Error(`errors in the result: ${JSON.stringify(result.errors)}`);
    return result;
  };

  // The tab the page opens on: the dashboard.
  const tabs = page.locator(".graphiql-tab");
  const tabCount = await tabs.count();
  if (tabCount < 5) problems.push(`${tabCount} tabs, want the examples (at least 5)`);
  if (!(await queryText()).includes("query Dashboard")) problems.push("the first tab is not the Dashboard");
  const dashboard = await run(expectInDashboard);
  const runs = dashboard.data.records.edges.length;
  step(`Dashboard ran: ${runs} PipelineRuns rendered`);
  if (runs === 0) problems.push("the Dashboard rendered no runs");

  // Another tab: the counts by status.
  await page.locator(".graphiql-tab", { hasText: "CountsByStatus" }).click();
  await page.waitForFunction(
    () => (document.querySelector(".graphiql-query-editor .CodeMirror")?.CodeMirror.getValue() ?? "").includes("query CountsByStatus"),
  ).catch(() => {});
  if (!(await queryText()).includes("query CountsByStatus")) problems.push("the CountsByStatus tab shows another query");
  const counts = await run("SUCCEEDED");
  step(`CountsByStatus ran: ${counts.data.recordStats.groups.length} groups`);

  // The Explorer: it lists the schema's fields, and a click adds one to
  // the query.
  await page.locator(".graphiql-tab", { hasText: "Dashboard" }).click();
  await page.getByRole("button", { name: "Show GraphiQL Explorer" }).click();
  const explorer = page.locator(".graphiql-explorer-root");
  await explorer.waitFor();
  await explorer.getByText("recordFacets", { exact: true }).first().waitFor();
  step("Explorer open, listing the schema's fields");
  await explorer.getByText("recordFacets", { exact: true }).first().click();
  await page.waitForFunction(
    () => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.getValue().includes("recordFacets"),
  ).catch(() => problems.push("clicking recordFacets in the Explorer did not add it to the query"));
  step("Explorer click added recordFacets to the query");
  await page.getByRole("button", { name: "Hide GraphiQL Explorer" }).click();

  const bundles = assets.filter((a) => /\.(js|css)$/.test(a.path));
  if (bundles.length < 2) problems.push(`bundles loaded: ${JSON.stringify(assets)}`);
  for (const a of bundles) {
    if (a.status !== 200 || !["gzip", "br"].includes(a.encoding)) {
      problems.push(`${a.path}: status ${a.status}, Content-Encoding ${JSON.stringify(a.encoding)}, want 200 with gzip or br`);
    }
  }
  step(`assets: ${assets.map((a) => `${a.path} ${a.status} ${a.encoding || "identity"}`).join(", ")}`);
} catch (err) {
  problems.push(String(err.stack || err));
}
if (refused.length > retried) problems.push(...refused);
// No browser.close(): its graceful shutdown takes seconds on a busy
// machine. On exit Playwright kills the browser it launched and removes
// its profile.
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("playground ok");
process.exit(0);
