// Runs the sampler of a page `charrnn export --html` wrote, outside the browser (node):
//   node page_sampler.js PAGE.html SETTINGS_JSON [--plain]
// prints {"text": ..., "note": ..., "kernel": ...} as JSON: the page's own script on the page's
// own model. --plain: the plain JavaScript products instead of the WebAssembly kernel.
// As a module, load(PAGE) hands a test the page's script's functions and its model.
"use strict";
const fs = require("fs");

function load(pagePath, plain = false) {
  const page = fs.readFileSync(pagePath, "utf8");
  const block = (id) => page.match(new RegExp(`<script[^>]*id="${id}"[^>]*>([\\s\\S]*?)</script>`))[1];
  const script = page.match(/<script>\n([\s\S]*?)<\/script>/)[1];
  const functions = new Function(
    "WebAssembly",
    `${script}\nreturn { Network, Vocabulary, readTensors, decodeBase64, generate, PCG64, filterLogits };`,
  )(plain ? undefined : WebAssembly);
  const model = JSON.parse(block("charrnn-model"));
  const network = () => new functions.Network(model.config, functions.readTensors(model, functions.decodeBase64(block("charrnn-weights"))));
  return { ...functions, model, network };
}

function main([pagePath, settingsJson, mode]) {
  const page = load(pagePath, mode === "--plain");
  const network = page.network();
  const settings = { prime: "", temperature: 1, length: 1000, seed: "0", topK: null, topP: null,
    greedy: false, sharpenRuns: false, stops: [], ...JSON.parse(settingsJson) };
  let text = settings.prime, note = null;
  for (const made of page.generate(network, new page.Vocabulary(page.model), settings)) {
    if (made.note) note = made.note;
    else text += made.char;
  }
  process.stdout.write(JSON.stringify({ text, note, kernel: network.matrices.kernel !== null }));
}

module.exports = { load };
if (require.main === module) main(process.argv.slice(2));
