/**
 * WGSL generator for masked multi-head attention (forward, and backward in two passes), one
 * kernel text per head width and variant.
 *
 * Why generated: each invocation holds its part of a head row (q, k, v) and of its accumulators
 * (out, dq, dk, dv) as vec4 values. Written as `array<vec4<f32>, 32>` indexed by a loop counter,
 * as a plain WGSL file must, they leave registers for slow memory (the loop bound is not a
 * compile-time constant, and WGSL compilers do not unroll). Here every loop over the head row is
 * written out, so the row lives in named `vec4<f32>` variables (`q_0`, `acc_0`, …) and nothing
 * private is indexed at run time. Streamed rows go to workgroup memory (`ta`, `tb`).
 *
 * Why split the head dimension ("lanes"): with one invocation per row and D = 96, the backward
 * dk/dv pass holds k, v, dk and dv (4 × 24 vec4 = 384 floats), more than a GPU thread's 255
 * registers, so it spills and only one warp fits per multiprocessor. A variant with `lanes` = L
 * gives each row L invocations; lane l owns the vec4s l, l + L, l + 2L, … of every head row
 * (ceil(D/4 / L) each, so D = 96 and L = 4 keep 6 vec4 per row vector), which fits registers
 * and gives L times more invocations. A score needs the full dot product: each lane writes its
 * partial dot (the vec4 products summed in increasing vec4 order, then (x + y) + (z + w)) to
 * workgroup memory, a barrier, and every lane adds the L partials in the fixed order
 * ((lane 0 + lane 1) + lane 2) + …, so all lanes of a row see the same score bit for bit and
 * run the same online softmax; each updates only its slice of the accumulator. With L = 1 there
 * is no exchange (the kernel is the one-invocation-per-row form). With `subgroups` the partials
 * are exchanged by `subgroupShuffle` from the row's L consecutive subgroup invocations instead
 * (same partials, same order; no barrier, no second partial array); every invocation then runs
 * the shuffles, masked keys included, since a shuffle reads lanes that must all be active. The
 * WGSL has no `enable subgroups;` (Naga rejects it; the device feature allows the builtins).
 * Different L sum in different orders, and the tile size sets where the forward's online softmax
 * rescales, so variants may differ in the last bits; one variant on one adapter is bit-identical
 * run to run.
 *
 * Semantics: q, k, v are the three C-wide sections of each qkv row, heads split as (H, D), RoPE
 * already applied. Query i attends key j when doc[j] == doc[i] and j <= i (forward encoder,
 * `anti` = 0) or j >= i (backward encoder, `anti` = 1); every token sees itself. Scores are
 * s_ij = (scale q_i) · k_j. Forward keeps an online softmax (running max and sum, rescaling the
 * accumulator when the max grows) and saves lse_i = log Σ_j exp(s_ij). Backward recomputes
 * p_ij = exp(s_ij − lse_i): pass 1 (dq) loops over keys for each query row and writes
 * Δ_i = dout_i · out_i; pass 2 (dk, dv) loops over query rows in increasing order for each key
 * row. Every sum has a fixed order and there are no atomics: results are bit-identical from run
 * to run.
 *
 * @module
 */

import { TEXEL_WGSL } from "./kernel.ts";

/** Tile sizes of one generated attention kernel. */
export interface AttentionTiles {
  /** vec4s per head row: ceil(D / 4), 1..32. */
  d4: number;
  /** Rows (queries, or keys in the dk/dv pass) per workgroup. */
  wg: number;
  /** Streamed rows per workgroup-memory tile. */
  bk: number;
  /** Invocations per row, splitting the head row: 1, 2, 4 or 8 (default 1). */
  lanes?: number;
  /**
   * Exchange the lanes' partial dot products with `subgroupShuffle` instead of workgroup
   * memory and a barrier (lanes > 1; needs the device feature `subgroups`, and subgroups made
   * of consecutive invocation indices, which the planner checks).
   */
  subgroups?: boolean;
  /**
   * Read the streamed rows (and their doc ids) straight from flat textures instead of staging
   * tiles in workgroup memory (lanes 1 only; needs D % 4 == 0): the variant for CPU adapters,
   * where every workgroup or storage load is a loop over the SIMD lanes and a texture load is a
   * vector gather (see `matmul_tex_wgsl.ts`). Bindings 8 (qkv), 9 (dout) and 10 (doc, r32sint)
   * are `flatTexture`s of those tensors. Same sums in the same order as the staged kernel of
   * the same `bk`: bit-identical to it.
   */
  tex?: boolean;
}

/** Head-row vec4s per lane and the padded tile row length (vec4s) of a kernel. */
function split(t: AttentionTiles): { per: number; stride: number } {
  const lanes = t.lanes ?? 1;
  const per = Math.ceil(t.d4 / lanes);
  return { per, stride: per * lanes };
}

/** Workgroup memory of a kernel with these tiles, in bytes. */
export function attentionWorkgroupBytes(t: AttentionTiles): number {
  const lanes = t.lanes ?? 1;
  const { stride } = split(t);
  // ta, tb (bk rows of `stride` vec4s), tdoc/tlse/tdelta (bk each), and the scores: pa
  // (bk x wg x lanes), plus pb (same) for the workgroup-memory exchange of split rows.
  const exchange = lanes > 1 && !t.subgroups ? 2 : 1;
  return 2 * t.bk * stride * 16 + 3 * t.bk * 4 + exchange * t.bk * t.wg * lanes * 4;
}

/**
 * Emits `fn ld_<name>(base, c) -> vec4<f32>`: vec4 `c` of a head row of D floats starting at
 * `base` of the f32 array `buf`, zero beyond D (D need not be a multiple of 4). Shared by the
 * training and the decoding attention generators.
 */
export function emitHeadLoad(emit: (line?: string) => void, name: string, buf: string): void {
  emit(`fn ld_${name}(base: u32, c: u32) -> vec4<f32> {`);
  emit(`  let d = 4u * c;`);
  emit(`  if (d + 3u < p.D) {`);
  emit(
    `    return vec4<f32>(${buf}[base + d], ${buf}[base + d + 1u], ${buf}[base + d + 2u], ` +
      `${buf}[base + d + 3u]);`,
  );
  emit(`  }`);
  emit(`  var v = vec4<f32>(0.0);`);
  for (const [e, l] of ["x", "y", "z", "w"].entries()) {
    emit(`  if (d + ${e}u < p.D) { v.${l} = ${buf}[base + d + ${e}u]; }`);
  }
  emit(`  return v;`);
  emit(`}`);
  emit();
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Generates the attention kernels (entry points `forward`, `backward_dq`, `backward_dkv`) for
 * one head width, tile size and lane count.
 *
 * Bindings (0 is the uniform `Params { B, T, H, D, anti, scale }`; names alias across entry
 * points, each uses only its own): forward 1 qkv (B, T, 3C), 2 doc (B, T) i32, 3 out (B, T, C)
 * rw, 4 lse (B, H, T) rw; backward_dq 1 qkv, 2 doc, 3 out, 4 lse, 5 dout (B, T, C), 6 dqkv
 * (B, T, 3C) rw (q section), 7 delta (B, H, T) rw; backward_dkv 1 qkv, 2 doc, 3 lse, 4 dout,
 * 5 delta, 6 dqkv rw (k and v sections). Workgroups of wg × lanes invocations; dispatch
 * (ceil(T / wg), H, B).
 *
 * @param t head width in vec4s, tile sizes and lanes per row.
 * @returns WGSL source with a header comment.
 *
 * @example
 * ```ts
 * import { attentionWgsl } from "./attention_wgsl.ts";
 * const code = attentionWgsl({ d4: 24, wg: 64, bk: 16, lanes: 4 }); // D = 96
 * console.log(code.includes("var acc_5 = vec4<f32>(0.0);")); // true
 * ```
 */
export function attentionWgsl(t: AttentionTiles): string {
  const { d4: D4, wg: WG, bk: BK } = t;
  const LN = t.lanes ?? 1;
  const SG = t.subgroups ?? false;
  const ok = [D4, WG, BK].every((x) => Number.isInteger(x) && x > 0) && D4 <= 32 &&
    [1, 2, 4, 8].includes(LN) && !(SG && LN === 1) && !(t.tex && LN !== 1);
  if (!ok) throw new Error(`Invalid attention tiles ${JSON.stringify(t)}`);
  const { per: P, stride: DP } = split(t);
  /** Invocations per workgroup. */
  const NI = WG * LN;
  const C = range(P);
  const TEX = t.tex ?? false;
  const L: string[] = [];
  const emit = (s = "") => L.push(s);
  /** One line per owned vec4 k of the head row. */
  const each = (indent: string, f: (k: number) => string) => {
    for (const k of C) emit(indent + f(k));
  };
  /** `e_0 + e_1 + …` in increasing k, as one expression. */
  const sum = (f: (k: number) => string) => C.map(f).join(" + ");
  /** Offset of owned vec4 k from the lane's first: `lane + off(k)` is its vec4 index. */
  const off = (k: number) => (k === 0 ? "" : ` + ${LN * k}u`);
  /** The lane's vec4 index of owned vec4 k. */
  const col = (k: number) => (LN === 1 ? `${k}u` : `lane${off(k)}`);
  /** The L partials at workgroup index `o` summed in lane order. */
  const lanesSum = (arr: string, o: string) =>
    range(LN).map((l) => `${arr}[${o}${l === 0 ? "" : ` + ${l}u`}]`).join(" + ");
  const hsum = (v: string) => `(${v}.x + ${v}.y) + (${v}.z + ${v}.w)`;
  /** The row's L lane values of `x` (a scalar) summed in lane order, via subgroup shuffles. */
  const shuffleSum = (x: string) =>
    range(LN).map((l) => `subgroupShuffle(${x}, sbase${l === 0 ? "" : ` + ${l}u`})`).join(" + ");

  emit(`// Generated by src/gpu/attention_wgsl.ts: masked attention for head rows of ${D4} vec4s`);
  emit(
    `// (D <= ${4 * D4}), ${WG} rows per workgroup, ${LN} lane(s) per row owning ${P} vec4s ` +
      `each,`,
  );
  emit(
    `// tiles of ${BK} streamed rows${SG ? ", partial dots exchanged by subgroup shuffles" : ""}.` +
      ` Head rows and`,
  );
  emit(`// accumulators are named vec4 variables`);
  emit(`// (q_k, acc_k, ...): no private array is indexed at run time. See the generator for the`);
  emit(`// semantics; sums run in a fixed order.`);
  emit();
  emit(`const NEG_INF: f32 = -3.0e38;`);
  emit();
  emit(`struct Params { B: u32, T: u32, H: u32, D: u32, anti: u32, scale: f32 }`);
  emit();
  emit(`@group(0) @binding(0) var<uniform> p: Params;`);
  emit(`@group(0) @binding(1) var<storage, read> qkv: array<f32>;`);
  emit(`@group(0) @binding(2) var<storage, read> doc: array<i32>;`);
  emit(`// forward`);
  emit(`@group(0) @binding(3) var<storage, read_write> out_w: array<f32>;`);
  emit(`@group(0) @binding(4) var<storage, read_write> lse_w: array<f32>;`);
  emit(`// backward_dq`);
  emit(`@group(0) @binding(3) var<storage, read> out_r: array<f32>;`);
  emit(`@group(0) @binding(4) var<storage, read> lse_dq: array<f32>;`);
  emit(`@group(0) @binding(5) var<storage, read> dout_dq: array<f32>;`);
  emit(`@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;`);
  emit(`@group(0) @binding(7) var<storage, read_write> delta_w: array<f32>;`);
  emit(`// backward_dkv`);
  emit(`@group(0) @binding(3) var<storage, read> lse_kv: array<f32>;`);
  emit(`@group(0) @binding(4) var<storage, read> dout_kv: array<f32>;`);
  emit(`@group(0) @binding(5) var<storage, read> delta_kv: array<f32>;`);
  emit();
  emit(`// Streamed tiles: keys and values (forward, backward_dq) or scaled queries and output`);
  emit(`// gradients (backward_dkv), rows of ${DP} vec4s (zero past D), per-row doc id, lse and`);
  if (LN === 1) {
    emit(`// delta; pa[jj * ${NI} + row] holds row's score for streamed row jj of the tile.`);
  } else if (SG) {
    emit(`// delta; pa[jj * ${NI} + row * ${LN} + lane] holds the score of streamed row jj`);
    emit(`// (each lane its own copy).`);
  } else {
    emit(`// delta; pa/pb[jj * ${NI} + row * ${LN} + lane] hold lane's partial dot products`);
    emit(`// (score, and dout · v in backward) for streamed row jj of the tile.`);
  }
  if (TEX) {
    emit(`// (tex variant: no tiles; streamed rows come from the flat textures below and the`);
    emit(`// scores of a tile stay in a private array.)`);
    emit(`@group(0) @binding(8) var tx_qkv: texture_2d<f32>;`);
    emit(`@group(0) @binding(9) var tx_dout: texture_2d<f32>;`);
    emit(`@group(0) @binding(10) var tx_doc: texture_2d<i32>;`);
    emit();
    emit(TEXEL_WGSL);
    emit(`// vec4 k of the key, value or (scaled) query row of head h at global row g, and of the`);
    emit(`// output gradient row; the doc id of row g.`);
    const rowFn = (name: string, tex: string, base: string, scale = "") => {
      emit(`fn ${name}(g: u32, h: u32, k: u32) -> vec4<f32> {`);
      emit(`  let C = p.H * p.D;`);
      emit(`  return textureLoad(${tex}, texel((${base}) / 4u + k), 0)${scale};`);
      emit(`}`);
    };
    rowFn("key_row", "tx_qkv", "g * 3u * C + C + h * p.D");
    rowFn("value_row", "tx_qkv", "g * 3u * C + 2u * C + h * p.D");
    rowFn("query_row", "tx_qkv", "g * 3u * C + h * p.D", " * p.scale");
    rowFn("dout_row", "tx_dout", "g * C + h * p.D");
    emit(`fn doc_at(g: u32) -> i32 {`);
    emit(`  return textureLoad(tx_doc, texel(g), 0).x;`);
    emit(`}`);
  } else {
    emit(`var<workgroup> ta: array<vec4<f32>, ${BK * DP}>;`);
    emit(`var<workgroup> tb: array<vec4<f32>, ${BK * DP}>;`);
    emit(`var<workgroup> tdoc: array<i32, ${BK}>;`);
    emit(`var<workgroup> tlse: array<f32, ${BK}>;`);
    emit(`var<workgroup> tdelta: array<f32, ${BK}>;`);
    emit(`var<workgroup> pa: array<f32, ${BK * NI}>;`);
    if (LN > 1 && !SG) emit(`var<workgroup> pb: array<f32, ${BK * NI}>;`);
  }
  emit();
  // Loaders: elements 4c..4c+3 of a D-wide row at `base`, zero past D.
  for (
    const [name, buf] of [["qkv", "qkv"], ["out", "out_r"], ["dout_dq", "dout_dq"], [
      "dout_kv",
      "dout_kv",
    ]]
  ) {
    emitHeadLoad(emit, name, buf);
  }
  for (const [name, buf] of [["out", "out_w"], ["dqkv", "dqkv"]]) {
    emit(`fn st_${name}(base: u32, c: u32, v: vec4<f32>) {`);
    emit(`  let d = 4u * c;`);
    for (const [e, l] of ["x", "y", "z", "w"].entries()) {
      emit(`  if (d + ${e}u < p.D) { ${buf}[base + d + ${e}u] = v.${l}; }`);
    }
    emit(`}`);
    emit();
  }
  emit(`// True when query i may attend key j (doc ids already compared by the caller).`);
  emit(`fn visible(i: u32, j: u32) -> bool {`);
  emit(`  return select(j <= i, j >= i, p.anti == 1u);`);
  emit(`}`);
  emit();
  emit(`// Range [lo, hi) of the streamed side that rows [r0, r0 + ${WG}) can see; stream_keys:`);
  emit(`// the rows are queries and the streamed side keys.`);
  emit(`fn stream_range(r0: u32, stream_keys: bool) -> vec2<u32> {`);
  emit(`  let r1 = min(p.T, r0 + ${WG}u);`);
  emit(`  let below = (p.anti == 0u) == stream_keys;`);
  emit(`  if (below) { return vec2<u32>(0u, r1); }`);
  emit(`  return vec2<u32>(r0, p.T);`);
  emit(`}`);
  emit();
  /** The tile load of keys and values (forward, backward_dq). */
  const loadKeys = () => {
    if (TEX) return;
    emit(`    workgroupBarrier();`);
    emit(`    for (var e = lid; e < ${BK * DP}u; e += ${NI}u) {`);
    emit(`      let j = t0 + e / ${DP}u;`);
    emit(`      if (j < range.y) {`);
    emit(`        let kbase = (b * T + j) * 3u * C + C + h * p.D;`);
    emit(`        ta[e] = ld_qkv(kbase, e % ${DP}u);`);
    emit(`        tb[e] = ld_qkv(kbase + C, e % ${DP}u);`);
    emit(`      }`);
    emit(`    }`);
    emit(`    for (var e = lid; e < ${BK}u; e += ${NI}u) {`);
    emit(`      tdoc[e] = select(-1, doc[b * T + min(t0 + e, T - 1u)], t0 + e < range.y);`);
    emit(`    }`);
    emit(`    workgroupBarrier();`);
  };
  const header = (name: string) => {
    emit(`@compute @workgroup_size(${NI})`);
    emit(
      `fn ${name}(@builtin(workgroup_id) wid: vec3<u32>, ` +
        `@builtin(local_invocation_index) lid: u32` +
        (SG ? `, @builtin(subgroup_invocation_id) sid: u32) {` : `) {`),
    );
    emit(`  let T = p.T;`);
    emit(`  let C = p.H * p.D;`);
    emit(`  let h = wid.y;`);
    emit(`  let b = wid.z;`);
    emit(`  let r0 = wid.x * ${WG}u;`);
    if (LN === 1) {
      emit(`  let row = lid;`);
    } else {
      emit(`  let row = lid / ${LN}u;`);
      emit(`  let lane = lid % ${LN}u;`);
    }
    if (SG) {
      emit(`  // The row's lanes are subgroup invocations sbase .. sbase + ${LN - 1}.`);
      emit(`  let sbase = sid - lane;`);
    }
  };
  /**
   * Workgroup index of lane 0's partial for streamed row `jj`: key-major, so the invocations of
   * a warp touch consecutive words (rows' lanes) for the same key: no bank conflicts, and the
   * lanes of a row reading one partial all read the same word.
   */
  const slot = (jj: string) => LN === 1 ? `${jj} * ${NI}u + row` : `${jj} * ${NI}u + row * ${LN}u`;
  const mine = (jj: string) => LN === 1 ? slot(jj) : `${slot(jj)} + lane`;
  /** Tile vec4 of streamed row base `rb` (already including the lane) for owned vec4 k. */
  /** tex: the functions reading streamed rows "ta" and "tb" in the pass being emitted. */
  let streamed = { ta: "key_row", tb: "value_row" };
  const tile = (arr: string, rb: string, k: number) =>
    TEX ? `${streamed[arr as "ta" | "tb"]}(${rb}, h, ${k}u)` : `${arr}[${rb}${off(k)}]`;
  /** Base of streamed row jj of the tile: in the tile, or (tex) its global row. */
  const rowBase = (jj: string) =>
    TEX ? `b * T + t0 + ${jj}` : LN === 1 ? `${jj} * ${DP}u` : `${jj} * ${DP}u + lane`;
  /** Doc id, lse and delta of streamed row jj. */
  const tdoc = TEX ? `doc_at(b * T + t0 + jj)` : `tdoc[jj]`;
  const tlse = TEX ? `lse_kv[(b * p.H + h) * T + t0 + jj]` : `tlse[jj]`;
  const tdelta = TEX ? `delta_kv[(b * p.H + h) * T + t0 + jj]` : `tdelta[jj]`;
  /** Score of streamed row jj (one lane per row): workgroup memory, or (tex) private. */
  const score = (jj: string) => TEX ? `sc[${jj}]` : `pa[${slot(jj)}]`;

  // forward
  header("forward");
  emit(`  let i = r0 + row;`);
  emit(`  let live = i < T;`);
  emit(`  let ri = min(i, T - 1u);`);
  emit(`  let qbase = (b * T + ri) * 3u * C + h * p.D;`);
  emit(`  let doc_i = doc[b * T + ri];`);
  each("  ", (k) => `let q_${k} = ld_qkv(qbase, ${col(k)}) * p.scale;`);
  each("  ", (k) => `var acc_${k} = vec4<f32>(0.0);`);
  emit(`  var m = NEG_INF;`);
  emit(`  var l = 0.0;`);
  emit(`  let range = stream_range(r0, true);`);
  if (TEX) emit(`  var sc: array<f32, ${BK}>;`);
  emit(`  for (var t0 = range.x; t0 < range.y; t0 += ${BK}u) {`);
  loadKeys();
  emit(`    let n = min(${BK}u, range.y - t0);`);
  if (LN === 1) {
    emit(`    if (live) {`);
    emit(`      var tile_max = NEG_INF;`);
    emit(`      for (var jj = 0u; jj < n; jj++) {`);
    emit(`        var sj = NEG_INF;`);
    emit(`        if (${tdoc} == doc_i && visible(i, t0 + jj)) {`);
    emit(`          let kb = ${rowBase("jj")};`);
    emit(`          let s4 = ${sum((k) => `q_${k} * ${tile("ta", "kb", k)}`)};`);
    emit(`          sj = ${hsum("s4")};`);
    emit(`          tile_max = max(tile_max, sj);`);
    emit(`        }`);
    emit(`        ${score("jj")} = sj;`);
    emit(`      }`);
  } else if (SG) {
    // Every lane of the workgroup runs the shuffles (no branch around them).
    emit(`    var tile_max = NEG_INF;`);
    emit(`    for (var jj = 0u; jj < n; jj++) {`);
    emit(`      let kb = ${rowBase("jj")};`);
    emit(`      let s4 = ${sum((k) => `q_${k} * ${tile("ta", "kb", k)}`)};`);
    emit(`      let part = ${hsum("s4")};`);
    emit(`      var sj = ${shuffleSum("part")};`);
    emit(`      if (!(tdoc[jj] == doc_i && visible(i, t0 + jj))) { sj = NEG_INF; }`);
    emit(`      tile_max = max(tile_max, sj);`);
    emit(`      pa[${mine("jj")}] = sj;`);
    emit(`    }`);
    emit(`    if (live) {`);
  } else {
    emit(`    for (var jj = 0u; jj < n; jj++) {`);
    emit(`      if (tdoc[jj] == doc_i && visible(i, t0 + jj)) {`);
    emit(`        let kb = ${rowBase("jj")};`);
    emit(`        let s4 = ${sum((k) => `q_${k} * ${tile("ta", "kb", k)}`)};`);
    emit(`        pa[${mine("jj")}] = ${hsum("s4")};`);
    emit(`      }`);
    emit(`    }`);
    emit(`    workgroupBarrier();`);
    emit(`    if (live) {`);
    emit(`      var tile_max = NEG_INF;`);
    emit(`      for (var jj = 0u; jj < n; jj++) {`);
    emit(`        if (tdoc[jj] == doc_i && visible(i, t0 + jj)) {`);
    emit(`          let o = ${slot("jj")};`);
    emit(`          tile_max = max(tile_max, ${lanesSum("pa", "o")});`);
    emit(`        }`);
    emit(`      }`);
  }
  emit(`      if (tile_max > NEG_INF) {`);
  emit(`        if (tile_max > m) {`);
  emit(`          let corr = exp(m - tile_max);`);
  emit(`          l *= corr;`);
  each("          ", (k) => `acc_${k} *= corr;`);
  emit(`          m = tile_max;`);
  emit(`        }`);
  emit(`        for (var jj = 0u; jj < n; jj++) {`);
  if (LN === 1) {
    emit(`          let sj = ${score("jj")};`);
    emit(`          if (sj > NEG_INF) {`);
  } else if (SG) {
    emit(`          let sj = pa[${mine("jj")}];`);
    emit(`          if (sj > NEG_INF) {`);
  } else {
    emit(`          if (tdoc[jj] == doc_i && visible(i, t0 + jj)) {`);
    emit(`            let o = ${slot("jj")};`);
    emit(`            let sj = ${lanesSum("pa", "o")};`);
  }
  emit(`            let pj = exp(sj - m);`);
  emit(`            l += pj;`);
  emit(`            let vb = ${rowBase("jj")};`);
  each("            ", (k) => `acc_${k} += pj * ${tile("tb", "vb", k)};`);
  emit(`          }`);
  emit(`        }`);
  emit(`      }`);
  emit(`    }`);
  emit(`  }`);
  emit(`  if (live) {`);
  emit(`    let obase = (b * T + i) * C + h * p.D;`);
  emit(`    let inv = 1.0 / l;`);
  each("    ", (k) => `st_out(obase, ${col(k)}, acc_${k} * inv);`);
  if (LN === 1) {
    emit(`    lse_w[(b * p.H + h) * T + i] = m + log(l);`);
  } else {
    emit(`    if (lane == 0u) { lse_w[(b * p.H + h) * T + i] = m + log(l); }`);
  }
  emit(`  }`);
  emit(`}`);
  emit();

  /**
   * The per-tile work of both backward passes: `s4`/`p4` are the lane's vec4 partials of the
   * score and of dout · v; `update` receives the scalars pij and ds.
   */
  const backwardTile = (
    vis: string,
    s4: string,
    p4: string,
    lse: string,
    delta: string,
    update: (rb: string) => void,
  ) => {
    emit(`    let n = min(${BK}u, range.y - t0);`);
    if (LN === 1) {
      emit(`    if (live) {`);
      emit(`      for (var jj = 0u; jj < n; jj++) {`);
      emit(`        if (${vis}) {`);
      emit(`          let rb = ${rowBase("jj")};`);
      emit(`          let s4 = ${s4};`);
      emit(`          let p4 = ${p4};`);
      emit(`          let pij = exp(${hsum("s4")} - ${lse});`);
      emit(`          let ds = pij * (${hsum("p4")} - ${delta});`);
      update("rb");
      emit(`        }`);
      emit(`      }`);
      emit(`    }`);
      return;
    }
    if (SG) {
      // Every lane of the workgroup runs the shuffles (no branch around them).
      emit(`    for (var jj = 0u; jj < n; jj++) {`);
      emit(`      let rb = ${rowBase("jj")};`);
      emit(`      let s4 = ${s4};`);
      emit(`      let p4 = ${p4};`);
      emit(`      let spart = ${hsum("s4")};`);
      emit(`      let ppart = ${hsum("p4")};`);
      emit(`      let sij = ${shuffleSum("spart")};`);
      emit(`      let dpij = ${shuffleSum("ppart")};`);
      emit(`      if (live && ${vis}) {`);
      emit(`          let pij = exp(sij - ${lse});`);
      emit(`          let ds = pij * (dpij - ${delta});`);
      update("rb");
      emit(`      }`);
      emit(`    }`);
      return;
    }
    emit(`    for (var jj = 0u; jj < n; jj++) {`);
    emit(`      if (${vis}) {`);
    emit(`        let rb = ${rowBase("jj")};`);
    emit(`        let s4 = ${s4};`);
    emit(`        let p4 = ${p4};`);
    emit(`        pa[${mine("jj")}] = ${hsum("s4")};`);
    emit(`        pb[${mine("jj")}] = ${hsum("p4")};`);
    emit(`      }`);
    emit(`    }`);
    emit(`    workgroupBarrier();`);
    emit(`    if (live) {`);
    emit(`      for (var jj = 0u; jj < n; jj++) {`);
    emit(`        if (${vis}) {`);
    emit(`          let rb = ${rowBase("jj")};`);
    emit(`          let o = ${slot("jj")};`);
    emit(`          let pij = exp(${lanesSum("pa", "o")} - ${lse});`);
    emit(`          let ds = pij * (${lanesSum("pb", "o")} - ${delta});`);
    update("rb");
    emit(`        }`);
    emit(`      }`);
    emit(`    }`);
  };

  // backward_dq
  header("backward_dq");
  emit(`  let i = r0 + row;`);
  emit(`  let live = i < T;`);
  emit(`  let ri = min(i, T - 1u);`);
  emit(`  let qbase = (b * T + ri) * 3u * C + h * p.D;`);
  emit(`  let obase = (b * T + ri) * C + h * p.D;`);
  emit(`  let doc_i = doc[b * T + ri];`);
  emit(`  let lse_i = lse_dq[(b * p.H + h) * T + ri];`);
  each("  ", (k) => `let q_${k} = ld_qkv(qbase, ${col(k)}) * p.scale;`);
  each("  ", (k) => `let do_${k} = ld_dout_dq(obase, ${col(k)});`);
  each("  ", (k) => `var dq_${k} = vec4<f32>(0.0);`);
  emit(`  var d4 = vec4<f32>(0.0);`);
  each("  ", (k) => `d4 += do_${k} * ld_out(obase, ${col(k)});`);
  if (LN === 1) {
    emit(`  let delta_i = ${hsum("d4")};`);
  } else if (SG) {
    emit(`  let dpart = ${hsum("d4")};`);
    emit(`  let delta_i = ${shuffleSum("dpart")};`);
  } else {
    emit(`  // Δ_i from the lanes' partials, in lane order (pa is free until the first tile).`);
    emit(`  pa[lid] = ${hsum("d4")};`);
    emit(`  workgroupBarrier();`);
    emit(`  let od = row * ${LN}u;`);
    emit(`  let delta_i = ${lanesSum("pa", "od")};`);
  }
  emit(`  let range = stream_range(r0, true);`);
  emit(`  for (var t0 = range.x; t0 < range.y; t0 += ${BK}u) {`);
  loadKeys();
  backwardTile(
    `${tdoc} == doc_i && visible(i, t0 + jj)`,
    sum((k) => `q_${k} * ${tile("ta", "rb", k)}`),
    sum((k) => `do_${k} * ${tile("tb", "rb", k)}`),
    "lse_i",
    "delta_i",
    (rb) => each("          ", (k) => `dq_${k} += ds * ${tile("ta", rb, k)};`),
  );
  emit(`  }`);
  emit(`  if (live) {`);
  each("    ", (k) => `st_dqkv(qbase, ${col(k)}, dq_${k} * p.scale);`);
  if (LN === 1) {
    emit(`    delta_w[(b * p.H + h) * T + i] = delta_i;`);
  } else {
    emit(`    if (lane == 0u) { delta_w[(b * p.H + h) * T + i] = delta_i; }`);
  }
  emit(`  }`);
  emit(`}`);
  emit();

  // backward_dkv
  header("backward_dkv");
  emit(`  let j = r0 + row;`);
  emit(`  let live = j < T;`);
  emit(`  let rj = min(j, T - 1u);`);
  emit(`  let kbase = (b * T + rj) * 3u * C + C + h * p.D;`);
  emit(`  let doc_j = doc[b * T + rj];`);
  each("  ", (k) => `let k_${k} = ld_qkv(kbase, ${col(k)});`);
  each("  ", (k) => `let v_${k} = ld_qkv(kbase + C, ${col(k)});`);
  each("  ", (k) => `var dk_${k} = vec4<f32>(0.0);`);
  each("  ", (k) => `var dv_${k} = vec4<f32>(0.0);`);
  emit(`  let range = stream_range(r0, false);`);
  emit(`  for (var t0 = range.x; t0 < range.y; t0 += ${BK}u) {`);
  if (!TEX) {
    emit(`    workgroupBarrier();`);
    emit(`    for (var e = lid; e < ${BK * DP}u; e += ${NI}u) {`);
    emit(`      let i = t0 + e / ${DP}u;`);
    emit(`      if (i < range.y) {`);
    emit(`        ta[e] = ld_qkv((b * T + i) * 3u * C + h * p.D, e % ${DP}u) * p.scale;`);
    emit(`        tb[e] = ld_dout_kv((b * T + i) * C + h * p.D, e % ${DP}u);`);
    emit(`      }`);
    emit(`    }`);
    emit(`    for (var e = lid; e < ${BK}u; e += ${NI}u) {`);
    emit(`      let i = t0 + e;`);
    emit(`      let ic = min(i, T - 1u);`);
    emit(`      tdoc[e] = select(-1, doc[b * T + ic], i < range.y);`);
    emit(`      tlse[e] = lse_kv[(b * p.H + h) * T + ic];`);
    emit(`      tdelta[e] = delta_kv[(b * p.H + h) * T + ic];`);
    emit(`    }`);
    emit(`    workgroupBarrier();`);
  }
  streamed = { ta: "query_row", tb: "dout_row" };
  backwardTile(
    `${tdoc} == doc_j && visible(t0 + jj, j)`,
    sum((k) => `${tile("ta", "rb", k)} * k_${k}`),
    sum((k) => `${tile("tb", "rb", k)} * v_${k}`),
    tlse,
    tdelta,
    (rb) => {
      each("          ", (k) => `dv_${k} += pij * ${tile("tb", rb, k)};`);
      each("          ", (k) => `dk_${k} += ds * ${tile("ta", rb, k)};`);
    },
  );
  emit(`  }`);
  emit(`  if (live) {`);
  emit(`    let base = (b * T + j) * 3u * C + C + h * p.D;`);
  each("    ", (k) => `st_dqkv(base, ${col(k)}, dk_${k});`);
  each("    ", (k) => `st_dqkv(base + C, ${col(k)}, dv_${k});`);
  emit(`  }`);
  emit(`}`);
  return L.join("\n") + "\n";
}
