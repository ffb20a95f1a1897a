"use strict";
// charrnn's sampler in the browser: the network of charrnn/core/numpy_model.py and the rules of
// charrnn/core/sampling.py, operation for operation, so that the same seed, prime and settings
// write the same text as `charrnn sample`. Both compute in float64 on the model's float32 (or
// float16) weights, add each total in the same order, draw from the same generator (numpy's
// default_rng: SeedSequence, then PCG64) and break ties the same way. What can still differ is
// the last bit of a few operations: numpy's matrix products add in blocks (the page adds one
// input after another) and the two libraries round tanh and exp apart by at most a unit in the
// last place. That moves a probability by about 1e-15, and a character comes out differently
// only if a draw falls that close to the boundary between two characters.

// ---------------------------------------------------------------- the random numbers (numpy's)

const MASK32 = 0xffffffff;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;

// numpy.random.SeedSequence(seed).generate_state(words): the seed's bits mixed into a pool of
// four 32-bit words, then drawn from it (numpy/random/bit_generator.pyx).
function seedSequenceState(seed, words) {
  const hashmix = (value, hash) => {
    value = (value ^ hash.value) >>> 0;
    hash.value = Math.imul(hash.value, 0x931e8875) >>> 0;
    value = Math.imul(value, hash.value) >>> 0;
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const result = (Math.imul(0xca01f9dd, x) - Math.imul(0x4973f715, y)) >>> 0;
    return (result ^ (result >>> 16)) >>> 0;
  };
  const entropy = [];
  for (let rest = BigInt(seed); rest > 0n; rest >>= 32n) entropy.push(Number(rest & 0xffffffffn));
  if (entropy.length === 0) entropy.push(0);
  const pool = [0, 0, 0, 0];
  const hash = { value: 0x43b0d7e5 };
  for (let i = 0; i < pool.length; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0, hash);
  for (let from = 0; from < pool.length; from++) {
    for (let to = 0; to < pool.length; to++) {
      if (from !== to) pool[to] = mix(pool[to], hashmix(pool[from], hash));
    }
  }
  for (let from = pool.length; from < entropy.length; from++) {
    for (let to = 0; to < pool.length; to++) pool[to] = mix(pool[to], hashmix(entropy[from], hash));
  }
  const state = [];
  let constant = 0x8b51f9dd;
  for (let i = 0; i < words; i++) {
    let value = (pool[i % pool.length] ^ constant) >>> 0;
    constant = Math.imul(constant, 0x58f38ded) >>> 0;
    value = Math.imul(value, constant) >>> 0;
    state.push((value ^ (value >>> 16)) >>> 0);
  }
  return state;
}

// numpy.random.default_rng(seed): PCG64 (a 128-bit LCG, XSL-RR output) seeded from SeedSequence.
class PCG64 {
  static MULTIPLIER = (0x2360ed051fc65da4n << 64n) | 0x4385df649fccf645n;

  constructor(seed) {
    const w = seedSequenceState(seed, 8).map(BigInt);
    const word64 = (i) => w[2 * i] | (w[2 * i + 1] << 32n);
    const initState = (word64(0) << 64n) | word64(1);
    const initSequence = (word64(2) << 64n) | word64(3);
    this.increment = ((initSequence << 1n) | 1n) & MASK128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
    this.spare32 = null; // the upper half of a 64-bit draw, kept for the next 32-bit one
  }

  step() {
    this.state = (this.state * PCG64.MULTIPLIER + this.increment) & MASK128;
  }

  next64() {
    this.step();
    const mixed = (this.state >> 64n) ^ (this.state & MASK64);
    const rotation = this.state >> 122n;
    return ((mixed >> rotation) | (mixed << ((64n - rotation) & 63n))) & MASK64;
  }

  next32() {
    if (this.spare32 !== null) {
      const spare = this.spare32;
      this.spare32 = null;
      return spare;
    }
    const draw = this.next64();
    this.spare32 = Number(draw >> 32n);
    return Number(draw & 0xffffffffn);
  }

  // Generator.random(): a double in [0, 1) from the top 53 bits.
  random() {
    return Number(this.next64() >> 11n) * 2 ** -53;
  }

  // Generator.integers(high): 0 <= n < high, by Lemire's method on 32-bit draws, as numpy.
  integers(high) {
    const range = high - 1;
    if (range === 0) return 0;
    const exclusive = BigInt(high);
    let product = BigInt(this.next32()) * exclusive;
    let leftover = Number(product & 0xffffffffn);
    if (leftover < high) {
      const threshold = (MASK32 - range) % high;
      while (leftover < threshold) {
        product = BigInt(this.next32()) * exclusive;
        leftover = Number(product & 0xffffffffn);
      }
    }
    return Number(product >> 32n);
  }
}

// ---------------------------------------------------------------- the weights

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

let halfTable = null; // every float16 bit pattern's value
function float16Table() {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) {
      const sign = bits & 0x8000 ? -1 : 1;
      const exponent = (bits >> 10) & 31;
      const fraction = bits & 1023;
      halfTable[bits] =
        exponent === 0 ? sign * fraction * 2 ** -24
        : exponent === 31 ? (fraction ? NaN : sign * Infinity)
        : sign * (1024 + fraction) * 2 ** (exponent - 25);
    }
  }
  return halfTable;
}

// Each tensor of the model file as a Float32Array (float16 values are exact in float32).
function readTensors(model, bytes) {
  const tensors = {};
  for (const [name, [dtype, shape, offset]] of Object.entries(model.tensors)) {
    const count = shape.reduce((a, b) => a * b, 1);
    let values;
    if (dtype === "float32") {
      values = new Float32Array(bytes.buffer.slice(offset, offset + 4 * count));
    } else {
      const table = float16Table();
      const halves = new Uint16Array(bytes.buffer.slice(offset, offset + 2 * count));
      values = new Float32Array(count);
      for (let i = 0; i < count; i++) values[i] = table[halves[i]];
    }
    tensors[name] = { shape, values };
  }
  return tensors;
}

// ---------------------------------------------------------------- matrix-vector products

// out[g] = the sum over j, in order j = 0, 1, ..., of x[j] * W[g][j]: float64 products of the
// float32 weights' values, added one after another. WebAssembly's 128-bit vectors do eight outputs at a time, each
// still adding its inputs in order, so they give the very numbers of the plain loop (plainMatvec),
// which runs where WebAssembly cannot. Source: matvec.wat, beside this file.
const MATVEC_WASM =
  "AGFzbQEAAAABCQFgBX9/f39/AAIPAQNlbnYGbWVtb3J5AgABAwIBAAcKAQZtYXR2ZWMAAAqKAgGHAgICfwV7AkADQCAERQ0B/QwAAAAAAAAAAAAAAAAAAAAAIQf9DAAAAAAAAAAAAAAAAAAAAAAhCP0MAAAAAAAAAAAAAAAAAAAAACEJ/QwAAAAAAAAAAAAAAAAAAAAAIQogACEGIAMhBQNAIAb9CgMAIQsgByALIAH9AAQA/fIB/fABIQcgCCALIAH9AAQQ/fIB/fABIQggCSALIAH9AAQg/fIB/fABIQkgCiALIAH9AAQw/fIB/fABIQogAUHAAGohASAGQQhqIQYgBUEBayEFIAUNAAsgAiAH/QsEACACIAj9CwQQIAIgCf0LBCAgAiAK/QsEMCACQcAAaiECIARBAWshBAwACwsL";
const BLOCK = 8; // outputs per block of the weight layout

class Matrices {
  // Lays out each matrix (rows = outputs, columns = inputs) in blocks of 8 outputs:
  // weight of input j to output b*8+k at ((b*inputs + j)*8 + k), zero past the last output.
  constructor(matrices) {
    let floats = 0;
    const placed = matrices.map(([rows, columns]) => {
      const blocks = Math.ceil(rows / BLOCK);
      const at = floats;
      floats += blocks * columns * BLOCK;
      return { rows, columns, blocks, at };
    });
    const widest = Math.max(...matrices.map(([rows, columns]) => Math.max(columns, Math.ceil(rows / BLOCK) * BLOCK)));
    const bytes = (floats + 2 * widest) * 8 + 64;
    this.kernel = null;
    try {
      const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
      const module = new WebAssembly.Module(decodeBase64(MATVEC_WASM));
      this.kernel = new WebAssembly.Instance(module, { env: { memory } }).exports.matvec;
      this.buffer = memory.buffer;
    } catch (error) {
      this.buffer = new ArrayBuffer(bytes); // no WebAssembly SIMD here: the plain loop
    }
    this.weights = new Float64Array(this.buffer, 0, floats); // float64 spares the kernel a conversion per weight
    this.x = new Float64Array(this.buffer, floats * 8, widest);
    this.out = new Float64Array(this.buffer, (floats + widest) * 8, widest);
    this.placed = placed;
    matrices.forEach(([rows, columns, values], index) => {
      const { blocks, at } = placed[index];
      for (let b = 0; b < blocks; b++) {
        for (let j = 0; j < columns; j++) {
          for (let k = 0; k < BLOCK; k++) {
            const row = b * BLOCK + k;
            this.weights[at + (b * columns + j) * BLOCK + k] = row < rows ? values[row * columns + j] : 0;
          }
        }
      }
    });
  }

  // Matrix `index` times `x` (exactly its columns long) into `into` (its rows long).
  times(index, x, into) {
    const { rows, columns, blocks, at } = this.placed[index];
    this.x.set(x);
    if (this.kernel) this.kernel(this.x.byteOffset, at * 8, this.out.byteOffset, columns, blocks);
    else plainMatvec(this.x, this.weights, at, this.out, columns, blocks);
    into.set(this.out.subarray(0, rows));
    return into;
  }
}

function plainMatvec(x, w, at, out, columns, blocks) {
  for (let b = 0; b < blocks; b++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    let o = at + b * columns * BLOCK;
    for (let j = 0; j < columns; j++, o += BLOCK) {
      const xj = x[j];
      s0 += xj * w[o]; s1 += xj * w[o + 1]; s2 += xj * w[o + 2]; s3 += xj * w[o + 3];
      s4 += xj * w[o + 4]; s5 += xj * w[o + 5]; s6 += xj * w[o + 6]; s7 += xj * w[o + 7];
    }
    const q = b * BLOCK;
    out[q] = s0; out[q + 1] = s1; out[q + 2] = s2; out[q + 3] = s3;
    out[q + 4] = s4; out[q + 5] = s5; out[q + 6] = s6; out[q + 7] = s7;
  }
}

// ---------------------------------------------------------------- the network (numpy_model.py)

const sigmoid = (x) => Math.tanh(x * 0.5) * 0.5 + 0.5;

class Network {
  constructor(config, tensors) {
    const H = config.hidden_size;
    this.config = config;
    this.H = H;
    this.gateWidth = { lstm: 4, gru: 3, rnn: 1 }[config.cell] * H;
    this.apartBlocks = config.cell === "gru" ? 1 : 0; // GRU: n's recurrent bias stays inside r * (...)
    const weight = (name) => tensors[name].values;
    const matrices = [];
    this.layers = [];
    for (let l = 0; l < config.layers; l++) {
      const G = this.gateWidth;
      const inputBias = new Float64Array(G);
      const bIh = weight(`rnn.bias_ih_l${l}`), bHh = weight(`rnn.bias_hh_l${l}`);
      const kept = G - this.apartBlocks * H;
      for (let g = 0; g < G; g++) inputBias[g] = bIh[g] + (g < kept ? bHh[g] : 0);
      const hiddenBias = this.apartBlocks ? Float64Array.from(bHh.subarray(kept)) : null;
      const layer = { inputBias, hiddenBias, hidden: matrices.length };
      matrices.push([G, H, weight(`rnn.weight_hh_l${l}`)]);
      const inputs = tensors[`rnn.weight_ih_l${l}`].shape[1];
      layer.input = matrices.length;
      matrices.push([G, inputs, weight(`rnn.weight_ih_l${l}`)]);
      this.layers.push(layer);
    }
    this.head = matrices.length;
    matrices.push([config.vocab_size, H, weight("head.weight")]);
    this.headBias = Float64Array.from(weight("head.bias"));
    this.embedding = config.input_mode === "embedding" ? weight("embedding.weight") : null;
    this.matrices = new Matrices(matrices);
    this.table = new Map(); // layer 0's input row of each character read so far
    const G = this.gateWidth;
    this.scratch = { inputs: new Float64Array(G), hidden: new Float64Array(G), gates: new Float64Array(G) };
    this.logits = new Float64Array(config.vocab_size);
  }

  zeroState() {
    const parts = this.config.cell === "lstm" ? 2 : 1;
    return this.layers.map(() => Array.from({ length: parts }, () => new Float64Array(this.H)));
  }

  // Layer 0's input for character `id`: its row of E @ W_ih^T (or of W_ih^T, one-hot) plus the biases.
  firstInputs(id) {
    let row = this.table.get(id);
    if (row === undefined) {
      const G = this.gateWidth;
      const first = this.layers[0];
      row = new Float64Array(G);
      if (this.embedding) {
        const E = this.config.embed_dim;
        this.matrices.times(first.input, this.embedding.subarray(id * E, (id + 1) * E), row);
      } else {
        const W = this.matrices.weights, { columns, at } = this.matrices.placed[first.input];
        for (let g = 0; g < G; g++) row[g] = W[at + (Math.floor(g / BLOCK) * columns + id) * BLOCK + (g % BLOCK)];
      }
      for (let g = 0; g < G; g++) row[g] = row[g] + first.inputBias[g];
      this.table.set(id, row);
    }
    return row;
  }

  // One step: read character `id` from `state` (changed in place); the logits of the next.
  step(id, state) {
    const { inputs, hidden, gates } = this.scratch;
    const H = this.H;
    let x = null;
    this.layers.forEach((layer, index) => {
      if (index === 0) inputs.set(this.firstInputs(id));
      else {
        this.matrices.times(layer.input, x, inputs);
        for (let g = 0; g < inputs.length; g++) inputs[g] = inputs[g] + layer.inputBias[g];
      }
      const h = state[index][0];
      this.matrices.times(layer.hidden, h, hidden);
      if (this.config.cell === "lstm") {
        const c = state[index][1];
        for (let g = 0; g < gates.length; g++) gates[g] = inputs[g] + hidden[g];
        for (let k = 0; k < H; k++) {
          const i = sigmoid(gates[k]), f = sigmoid(gates[H + k]), o = sigmoid(gates[3 * H + k]);
          c[k] = f * c[k] + i * Math.tanh(gates[2 * H + k]);
          h[k] = o * Math.tanh(c[k]);
        }
      } else if (this.config.cell === "gru") {
        for (let k = 0; k < H; k++) {
          const r = sigmoid(inputs[k] + hidden[k]);
          const z = sigmoid(inputs[H + k] + hidden[H + k]);
          const n = Math.tanh(inputs[2 * H + k] + r * (hidden[2 * H + k] + layer.hiddenBias[k]));
          h[k] = n + z * (h[k] - n);
        }
      } else {
        for (let k = 0; k < H; k++) h[k] = Math.tanh(inputs[k] + hidden[k]);
      }
      x = h;
    });
    this.matrices.times(this.head, x, this.logits);
    for (let v = 0; v < this.logits.length; v++) this.logits[v] = this.logits[v] + this.headBias[v];
    return this.logits;
  }
}

// ---------------------------------------------------------------- choosing a character (sampling.py)

function maxOf(values) {
  let best = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (!(values[i] <= best)) best = values[i]; // NaN wins, as numpy's max lets it through
  }
  return best;
}

function softmax(logits) {
  const best = maxOf(logits);
  const probs = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    probs[i] = Math.exp(logits[i] - best);
    total += probs[i];
  }
  for (let i = 0; i < logits.length; i++) probs[i] = probs[i] / total;
  return probs;
}

function scaled(logits, best, temperature) {
  if (temperature === 1) return logits;
  return logits.map((value) => (value - best) / temperature);
}

// top-k keeps the k largest and, among logits equal to the k-th, the lowest ids; top-p ranks by
// logit, ties by id, and keeps the ranks before the first whose predecessors' probabilities
// (softmax in id order) reach p. Both read the logits' values alone, never a sort of ids: the
// last kept rank's value and how many rank above it say which ids stay (keepTop).
function filterLogits(logits, topK, topP) {
  const V = logits.length;
  if (topK !== null && topK < V) logits = keepTop(logits, topK, kthLargest(logits, topK));
  if (topP !== null && topP < 1) {
    const best = maxOf(logits);
    let total = 0;
    for (let i = 0; i < V; i++) total += Math.exp(logits[i] - best);
    const ascending = Float64Array.from(logits).sort();
    let above = 0, kept = 0;
    for (let rank = 0; rank < V; rank++) {
      const p = Math.exp(ascending[V - 1 - rank] - best) / total;
      above += p;
      if (rank > 0 && above - p >= topP) break;
      kept++;
    }
    logits = keepTop(logits, kept, ascending[V - kept]);
  }
  return logits;
}

// The logits of the k largest, and among those equal to the k-th largest (kth), the lowest ids;
// -Infinity for the rest.
function keepTop(logits, k, kth) {
  let room = k;
  for (let i = 0; i < logits.length; i++) if (logits[i] > kth) room--;
  return logits.map((value) => (value > kth || (value === kth && room-- > 0) ? value : -Infinity));
}

// The k-th largest of values (k from 1) without sorting them all (Hoare's selection).
function kthLargest(values, k) {
  const a = Float64Array.from(values), place = a.length - k; // its place in ascending order
  let low = 0, high = a.length - 1;
  while (low < high) {
    const pivot = a[(low + high) >> 1];
    let i = low, j = high;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const swapped = a[i];
        a[i++] = a[j];
        a[j--] = swapped;
      }
    }
    if (place <= j) high = j;
    else if (place >= i) low = i;
    else break; // a[j + 1 .. i - 1] all equal the pivot
  }
  return a[place];
}

const sharpens = (s) => s.temperature < 1 || s.topK !== null || s.topP !== null;

function sharpened(logits, s, best = maxOf(logits)) {
  logits = scaled(logits, best, s.temperature);
  if (s.topK !== null || s.topP !== null) logits = filterLogits(logits, s.topK, s.topP);
  return softmax(logits);
}

// The run rule: repeating the previous character is never made likelier than the model makes it.
function runsAsTheModelHasThem(probs, logits, previous, s) {
  const allowed = softmax(logits)[previous];
  const withoutRepeat = Float64Array.from(logits);
  withoutRepeat[previous] = -Infinity;
  if (!(probs[previous] > allowed) || !withoutRepeat.some(Number.isFinite)) return probs;
  const capped = sharpened(withoutRepeat, s).map((p) => p * (1 - allowed));
  capped[previous] = allowed;
  return capped;
}

// Inverse-CDF: the first index whose running total passes u times the total.
function draw(probs, rng) {
  const cdf = new Float64Array(probs.length);
  let total = 0;
  for (let i = 0; i < probs.length; i++) cdf[i] = total += probs[i];
  const point = rng.random() * cdf[cdf.length - 1];
  let index = 0;
  for (let i = 0; i < cdf.length; i++) if (cdf[i] <= point) index++;
  return Math.min(index, probs.length - 1);
}

function pickNext(modelLogits, s, rng, banned, previous) {
  const logits = Float64Array.from(modelLogits);
  if (banned !== null) logits[banned] = -Infinity;
  const best = maxOf(logits);
  if (!Number.isFinite(best)) throw new Error("the model predicts NaN or infinite scores: its weights are damaged or out of range");
  if (s.greedy) return logits.indexOf(best);
  let probs = sharpened(logits, s, best);
  if (!s.sharpenRuns && sharpens(s)) probs = runsAsTheModelHasThem(probs, logits, previous, s);
  return draw(probs, rng);
}

// ---------------------------------------------------------------- the prime (vocab.py, nearest.py)

// The line `charrnn sample` writes about a prime's unseen characters (nearest.Unseen.note), word
// for word: each list in code point order, ten shown, each character as Python's repr shows it.
const SHOWN = 10; // characters named in one message (nearest.SHOWN)

function unseenNote(mapped, asUnknown, leftOut) {
  const sorted = (chars) => [...chars].sort((a, b) => a.codePointAt(0) - b.codePointAt(0));
  const listed = (items) => {
    const more = items.length > SHOWN ? ` and ${(items.length - SHOWN).toLocaleString("en")} more` : "";
    return items.slice(0, SHOWN).join(", ") + more;
  };
  const parts = [];
  const pairs = sorted(mapped.keys()).map((char) => `${pythonRepr(char)} as ${pythonRepr(mapped.get(char))}`);
  if (mapped.size) parts.push(`read ${listed(pairs)}`);
  if (asUnknown.size) parts.push(`read ${listed(sorted(asUnknown).map(pythonRepr))} as the unknown character`);
  if (leftOut.size) parts.push(`left out ${listed(sorted(leftOut).map(pythonRepr))}`);
  if (!parts.length) return null;
  const all = [...mapped.keys(), ...asUnknown, ...leftOut];
  return `${parts.join("; ")} (${all.length === 1 ? `the model never saw ${pythonRepr(all[0])}` : "characters the model never saw"})`;
}

// repr(char) in Python: quoted, and escaped where Python does not print the character itself
// (control, format, private-use, unassigned, separators other than the space). Where the
// browser's Unicode is newer than Python's, a newly assigned character prints here unescaped.
function pythonRepr(char) {
  const named = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" }[char];
  const code = char.codePointAt(0);
  const hex = (digits) => code.toString(16).padStart(digits, "0");
  let body = char;
  if (named) body = named;
  else if (char !== " " && /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u.test(char)) {
    body = code < 0x100 ? `\\x${hex(2)}` : code < 0x10000 ? `\\u${hex(4)}` : `\\U${hex(8)}`;
  }
  return char === "'" ? `"'"` : `'${body}'`;
}

class Vocabulary {
  constructor(model) {
    this.chars = model.chars;
    this.unknownId = model.unknown_id;
    this.ids = new Map();
    model.chars.forEach((char, id) => { if (id !== model.unknown_id) this.ids.set(char, id); });
    for (const [char, id] of Object.entries(model.aliases)) this.ids.set(char, id);
    this.nearest = model.nearest; // { variants, widths }: an unseen character -> the known one it is read as
  }

  // The ids a prime is read as, and a note on the characters the model never saw (or null).
  read(prime) {
    const ids = [], mapped = new Map(), asUnknown = new Set(), leftOut = new Set();
    for (const char of prime) {
      if (this.ids.has(char)) { ids.push(this.ids.get(char)); continue; }
      const near = this.nearestOf(char);
      if (near !== null) { mapped.set(char, near); ids.push(this.ids.get(near)); }
      else if (this.unknownId !== null) { asUnknown.add(char); ids.push(this.unknownId); }
      else leftOut.add(char);
    }
    return { ids, note: unseenNote(mapped, asUnknown, leftOut) };
  }

  // As NearestForms.of: a variant (looked up: the page carries every Chinese character's that
  // OpenCC found at export), the NFKC form, a known character's NFKC form, the other case.
  nearestOf(char) {
    const { variants, widths } = this.nearest;
    if (Object.hasOwn(variants, char)) return variants[char];
    const plain = char.normalize("NFKC");
    if (plain !== char && this.ids.has(plain)) return plain;
    if (Object.hasOwn(widths, char)) return widths[char];
    const other = char.toUpperCase() === char ? char.toLowerCase() : char.toUpperCase();
    return other !== char && [...other].length === 1 && this.ids.has(other) ? other : null;
  }

  // generate_text's start: the prime's ids, else a newline, a space, or a random character.
  startIds(prime, rng) {
    const read = prime ? this.read(prime) : { ids: [], note: null };
    if (read.ids.length) return read;
    for (const start of ["\n", " "]) if (this.ids.has(start)) return { ids: [this.ids.get(start)], note: read.note };
    return { ids: [rng.integers(this.chars.length)], note: read.note };
  }
}

// ---------------------------------------------------------------- writing (generate_text)

function* generate(network, vocabulary, s) {
  const rng = new PCG64(s.seed);
  const start = vocabulary.startIds(s.prime, rng);
  if (start.note) yield { note: start.note };
  const state = network.zeroState();
  let logits = null;
  for (const id of start.ids) logits = network.step(id, state);
  let previous = start.ids[start.ids.length - 1];
  const longest = Math.max(0, ...s.stops.map((stop) => stop.length));
  let recent = "";
  for (let position = 0; position < s.length; position++) {
    previous = pickNext(logits, s, rng, vocabulary.unknownId, previous);
    const char = vocabulary.chars[previous];
    yield { char };
    if (longest) {
      recent = (recent + char).slice(-longest);
      if (s.stops.some((stop) => recent.endsWith(stop))) return;
    }
    if (position + 1 < s.length) logits = network.step(previous, state);
  }
}

// ---------------------------------------------------------------- settings (names as `charrnn sample`'s)

const MAX_SEED = 2n ** 63n - 1n;
const SETTINGS = {
  prime: (v) => v,
  temperature: (v) => positive(v, "temperature"),
  temp: (v) => positive(v, "temperature"),
  length: (v) => count(v, "length", 0),
  seed: (v) => { const n = count(v, "seed", 0); if (BigInt(n) > MAX_SEED) throw new Error(`seed: at most ${MAX_SEED}`); return n; },
  top_k: (v) => count(v, "top_k", 1),
  top_p: (v) => { const p = positive(v, "top_p"); if (p > 1) throw new Error("top_p: must be in (0, 1]"); return p; },
};
const FLAGS = ["greedy", "sharpen_runs", "run"];

function positive(text, name) {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) throw new Error(`${name}: ${JSON.stringify(text)} is not a number above 0`);
  return value;
}

function count(text, name, low) {
  if (!/^\d+$/.test(text.trim()) || Number(text) < low) throw new Error(`${name}: ${JSON.stringify(text)} is not a whole number of at least ${low}`);
  return name === "seed" ? text.trim() : Number(text);
}

// The settings in a URL fragment: prime=ROMEO%3A&temperature=0.8&seed=3&run (stop= repeatable).
function fragmentSettings(fragment) {
  const found = { stops: [] };
  for (const part of fragment.replace(/^#/, "").split("&").filter(Boolean)) {
    const [rawName, ...rest] = part.split("=");
    const name = decodeURIComponent(rawName).replace(/-/g, "_");
    const value = decodeURIComponent(rest.join("=").replace(/\+/g, " "));
    if (name === "stop") found.stops.push(value);
    else if (FLAGS.includes(name)) found[name] = rest.length === 0 || !["0", "false", "no"].includes(value);
    else if (name in SETTINGS) found[name === "temp" ? "temperature" : name] = SETTINGS[name](value);
    else throw new Error(`${name}: no such setting (the page reads ${[...Object.keys(SETTINGS), "stop", ...FLAGS].join(", ")})`);
  }
  return found;
}

// ---------------------------------------------------------------- the page
// (Everything above is plain functions, which tests also run outside a browser.)

function startPage(document) {
  const MODEL = JSON.parse(document.getElementById("charrnn-model").textContent);
  const WEIGHTS_BASE64 = document.getElementById("charrnn-weights").textContent;
  const $ = (id) => document.getElementById(id);
  const output = $("output");
  let network = null; // built on the first run: the weights laid out for the products
  let running = null; // the run in progress: { cancelled }

  function formSettings() {
    const read = (id, parse) => ($(id).value.trim() === "" ? null : parse($(id).value));
    return {
      prime: $("prime").value,
      temperature: read("temperature", SETTINGS.temperature) ?? 1,
      length: read("length", SETTINGS.length) ?? 1000,
      seed: read("seed", SETTINGS.seed),
      topK: read("top_k", SETTINGS.top_k),
      topP: read("top_p", SETTINGS.top_p),
      greedy: $("greedy").checked,
      sharpenRuns: $("sharpen_runs").checked,
      stops: fragmentStops ?? ($("stops").value ? [$("stops").value.replace(/\\n/g, "\n")] : []),
    };
  }
  let fragmentStops = null; // several stop= of the fragment, which the one field cannot show

  function showSettings(found) {
    for (const [name, value] of Object.entries(found)) {
      if (name === "stops") {
        $("stops").value = value.map((stop) => stop.replace(/\n/g, "\\n")).join(" ");
        fragmentStops = value.length > 1 ? value : null;
      }
      else if (name === "greedy" || name === "sharpen_runs") $(name).checked = value;
      else if (name !== "run") $(name).value = value;
    }
  }

  function shellQuoted(text) {
    return /^[\w.,:/=+-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
  }

  // The command line that writes this text. A float16 page writes what a float16 model file
  // writes, not what its float32 checkpoint writes: the line makes that file first.
  function sampleCommand(s) {
    const half = MODEL.dtype === "float16";
    const parts = half ? ["charrnn export half.model -c", shellQuoted(MODEL.source), "--half &&"] : [];
    parts.push("charrnn sample -c", half ? "half.model" : shellQuoted(MODEL.source), "--seed", s.seed, "--length", s.length);
    if (s.prime) parts.push("--prime", shellQuoted(s.prime));
    if (s.temperature !== 1) parts.push("--temp", s.temperature);
    if (s.topK !== null) parts.push("--top-k", s.topK);
    if (s.topP !== null) parts.push("--top-p", s.topP);
    if (s.greedy) parts.push("--greedy");
    if (s.sharpenRuns) parts.push("--sharpen-runs");
    for (const stop of s.stops) parts.push("--stop", shellQuoted(stop));
    return parts.join(" ");
  }

  function fail(message) {
    $("error").textContent = message;
    output.setAttribute("data-error", message);
    output.setAttribute("data-done", "");
    $("stop").disabled = true;
  }

  function write(s) {
    if (running) running.cancelled = true;
    $("error").textContent = $("note").textContent = "";
    output.textContent = "";
    for (const name of ["data-done", "data-error", "data-chars-per-second"]) output.removeAttribute(name);
    if (s.seed === null) s.seed = String(crypto.getRandomValues(new Uint32Array(1))[0]);
    $("seed").placeholder = `random (last: ${s.seed})`;
    $("command").textContent = sampleCommand(s);
    const run = { cancelled: false };
    running = run;
    let chars;
    try {
      if (network === null) {
        const building = performance.now();
        network = new Network(MODEL.config, readTensors(MODEL, decodeBase64(WEIGHTS_BASE64)));
        document.documentElement.setAttribute("data-build-ms", (performance.now() - building).toFixed(1));
      }
      chars = generate(network, new Vocabulary(MODEL), s);
    } catch (error) {
      return fail(error.message);
    }
    if (s.prime) output.append(s.prime);
    $("stop").disabled = false;
    const began = performance.now();
    let made = 0, longestSlice = 0; // ms: how long the page went without answering

    const finish = (how) => {
      const seconds = (performance.now() - began) / 1000;
      const rate = made / Math.max(seconds, 1e-9);
      output.setAttribute("data-chars-per-second", rate.toFixed(0));
      output.setAttribute("data-longest-slice-ms", longestSlice.toFixed(1));
      $("status").textContent = `${made.toLocaleString("en")} characters in ${seconds.toFixed(2)} s (${Math.round(rate).toLocaleString("en")} a second)${how}`;
      output.setAttribute("data-done", "");
      $("stop").disabled = true;
      running = null;
    };
    const slice = () => {
      if (run.cancelled) return run === running ? finish(", stopped") : undefined;
      const sliceBegan = performance.now();
      const until = sliceBegan + 12; // then let the page answer clicks and paint
      let chunk = "";
      try {
        while (performance.now() < until) { // after each character: a large vocabulary's take ms
          const next = chars.next();
          if (next.done) {
            output.append(chunk);
            longestSlice = Math.max(longestSlice, performance.now() - sliceBegan);
            return finish("");
          }
          if (next.value.note) $("note").textContent = next.value.note;
          else { chunk += next.value.char; made++; }
        }
      } catch (error) {
        output.append(chunk);
        return fail(error.message);
      }
      output.append(chunk);
      longestSlice = Math.max(longestSlice, performance.now() - sliceBegan);
      $("status").textContent = `${made.toLocaleString("en")} characters…`;
      channel.port2.postMessage(null);
    };
    const channel = new MessageChannel(); // yields to the browser between slices, without setTimeout's 4 ms
    channel.port1.onmessage = slice;
    slice();
  }

  function describeModel() {
    const c = MODEL.config;
    const parts = [`${c.cell.toUpperCase()} ${c.layers}×${c.hidden_size}`, `${c.input_mode} input`,
      `${MODEL.parameters.toLocaleString("en")} parameters`, `${MODEL.chars.length.toLocaleString("en")} characters`,
      `step ${MODEL.step.toLocaleString("en")}`];
    if (MODEL.validation_bpc !== null) parts.push(`validation ${MODEL.validation_bpc.toFixed(3)} bits per character`);
    parts.push(`${MODEL.dtype} weights`);
    $("model").textContent = parts.join(" · ");
  }

  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      write(formSettings());
    } catch (error) {
      fail(error.message);
    }
  });
  $("prime").addEventListener("keydown", (event) => { // Enter is a newline in the prime; Ctrl+Enter writes
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("form").requestSubmit();
    }
  });
  $("stops").addEventListener("input", () => { fragmentStops = null; });
  $("stop").addEventListener("click", () => { if (running) running.cancelled = true; });
  describeModel();
  document.documentElement.setAttribute("data-opened-ms", performance.now().toFixed(1)); // since the page was asked for
  if (location.hash.length > 1) {
    try {
      const found = fragmentSettings(location.hash);
      showSettings(found);
      if (found.run) write(formSettings());
    } catch (error) {
      fail(error.message);
    }
  }
}

if (typeof document !== "undefined") startPage(document);
