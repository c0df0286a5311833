// Builds the playground that annals serve embeds (server/assets/dist):
// one JavaScript and one CSS bundle, minified, stored precompressed and not
// uncompressed: gzip for every browser, and brotli too where it is at least
// 5% smaller (not the CSS: its fonts are already compressed). The server
// gunzips for the rare client that takes neither.
// The server names each asset by a hash of its content when it starts.
//
//   cd server/assets/src && npm ci && npm run build
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

const out = new URL("../dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out);

await build({
  entryPoints: ["playground.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  define: { "process.env.NODE_ENV": '"production"' },
  // The licences of everything bundled, in one file next to the bundle.
  legalComments: "external",
  logLevel: "warning",
});

for (const name of ["playground.js", "playground.css"]) {
  const content = readFileSync(out + name);
  // mtime 0 and no file name in the gzip header: the same input gives the
  // same bytes, so a rebuild without changes leaves git clean.
  const gzip = gzipSync(content, { level: 9 });
  const brotli = brotliCompressSync(content, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: content.length },
  });
  writeFileSync(out + name + ".gz", gzip);
  const keepBrotli = brotli.length < 0.95 * gzip.length;
  if (keepBrotli) writeFileSync(out + name + ".br", brotli);
  rmSync(out + name);
  console.log(`${name}: ${content.length} bytes, gzip ${gzip.length}, brotli ${brotli.length}${keepBrotli ? "" : " (not kept)"}`);
}
copyFileSync("favicon.svg", out + "favicon.svg");
