// Runs the sampler of a page `charrnn export --html` wrote, outside the browser (node):
//   node page_sampler.js PAGE.html SETTINGS_JSON [--plain]
// prints {"text": ..., "note": ...} as JSON: the page's own script on the page's own model.
// --plain: the plain JavaScript products instead of the WebAssembly kernel.
"use strict";
const fs = require("fs");
const [pagePath, settingsJson, mode] = process.argv.slice(2);
const page = fs.readFileSync(pagePath, "utf8");
const block = (id) => page.match(new RegExp(`<script[^>]*id="${id}"[^>]*>([\\s\\S]*?)</script>`))[1];
const script = page.match(/<script>\n([\s\S]*?)<\/script>/)[1];
const sampler = new Function(
  "WebAssembly",
  `${script}\nreturn { Network, Vocabulary, readTensors, decodeBase64, generate, PCG64 };`,
)(mode === "--plain" ? undefined : WebAssembly);
const model = JSON.parse(block("charrnn-model"));
const network = new sampler.Network(model.config, sampler.readTensors(model, sampler.decodeBase64(block("charrnn-weights"))));
const settings = { prime: "", temperature: 1, length: 1000, seed: "0", topK: null, topP: null,
  greedy: false, sharpenRuns: false, stops: [], ...JSON.parse(settingsJson) };
let text = settings.prime, note = null;
for (const made of sampler.generate(network, new sampler.Vocabulary(model), settings)) {
  if (made.note) note = made.note;
  else text += made.char;
}
process.stdout.write(JSON.stringify({ text, note, kernel: network.matrices.kernel !== null }));
