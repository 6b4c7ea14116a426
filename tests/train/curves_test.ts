import assert from "node:assert/strict";
import {
  chooseScale,
  CURVES_SVG,
  formatTick,
  metricsChart,
  renderChart,
  writeCurves,
} from "../../src/train/curves.ts";

/**
 * Checks XML well-formedness the way a parser would: one root, every tag closed in order,
 * attributes quoted and unique, no raw `<` or stray `&` in text or attribute values.
 * Returns the element names in document order.
 */
function checkXml(text: string): string[] {
  let s = text.replace(/^<\?xml [^?]*\?>\s*/, "");
  const names: string[] = [];
  const open: string[] = [];
  let roots = 0;
  while (s.length > 0) {
    const lt = s.indexOf("<");
    const chunk = lt < 0 ? s : s.slice(0, lt);
    assert.doesNotMatch(chunk, /&(?!(amp|lt|gt|quot|apos);)/, `stray & in "${chunk}"`);
    if (open.length === 0) assert.match(chunk, /^\s*$/, `text outside the root: "${chunk}"`);
    if (lt < 0) break;
    s = s.slice(lt);
    const m = /^<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/.exec(s);
    assert.ok(m, `malformed tag at "${s.slice(0, 60)}"`);
    const [whole, closing, name, attrs, selfClosing] = m;
    if (closing) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
    } else {
      const keys = [...attrs.matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => {
        assert.doesNotMatch(a[2], /&(?!(amp|lt|gt|quot|apos);)/, `stray & in ${a[1]}`);
        return a[1];
      });
      assert.equal(new Set(keys).size, keys.length, `duplicate attribute in <${name}>`);
      if (open.length === 0) roots++;
      names.push(name);
      if (!selfClosing) open.push(name);
    }
    s = s.slice(whole.length);
  }
  assert.deepEqual(open, [], "unclosed elements");
  assert.equal(roots, 1, "one root element");
  return names;
}

/** The numbers in every coordinate-like attribute: all must be finite. */
function coordinates(svg: string): number[] {
  return [...svg.matchAll(/ (?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"/g)].map((m) =>
    Number(m[1])
  ).concat(
    [...svg.matchAll(/points="([^"]*)"/g)].flatMap((m) => m[1].split(/[ ,]/).map((v) => Number(v))),
  );
}

const count = (svg: string, pattern: RegExp) => [...svg.matchAll(pattern)].length;

Deno.test("renderChart() writes well-formed SVG with title, ticks, axis labels and legend", () => {
  const steps = Array.from({ length: 40 }, (_, i) => (i + 1) * 20);
  const svg = renderChart({
    title: "run <1> & friends",
    xLabel: "step",
    panels: [
      {
        yLabel: "loss",
        series: [
          { name: "train_loss", points: steps.map((x) => ({ x, y: 3 / Math.sqrt(x) })) },
          {
            name: "val_loss",
            points: steps.filter((x) => x % 100 === 0).map((x) => ({ x, y: 1 })),
          },
        ],
      },
      { yLabel: "path accuracy", series: [{ name: "acc", points: [{ x: 100, y: 0.4 }] }] },
    ],
  });
  const names = checkXml(svg);
  assert.equal(names[0], "svg");
  assert.match(svg, /<title>run &lt;1&gt; &amp; friends<\/title>/);
  assert.equal(count(svg, /<g class="panel">/g), 2);
  for (const label of ["train_loss", "val_loss", "acc", ">loss", ">path accuracy", ">step"]) {
    assert.ok(svg.includes(label), label);
  }
  // x ticks at round steps, shared by both panels.
  assert.ok(svg.includes(">400</text>") && svg.includes(">800</text>"));
  assert.ok(coordinates(svg).every(Number.isFinite));
});

Deno.test("chooseScale() picks log only for positive data spanning more than 100x", () => {
  assert.equal(chooseScale([3, 0.02]), "log");
  assert.equal(chooseScale([3, 0.05]), "linear");
  assert.equal(chooseScale([3, 0, 0.0001]), "linear");
  assert.equal(chooseScale([3, -1], "log"), "linear");
  assert.equal(chooseScale([3, 2], "log"), "log");
  assert.equal(chooseScale([3, 0.0001], "linear"), "linear");
  assert.equal(chooseScale([]), "linear");
  assert.equal(chooseScale([NaN, 2, 0.001]), "log");
});

Deno.test("renderChart() labels a log axis by decades when losses span 1e-3 to 10", () => {
  const svg = renderChart({
    title: "t",
    xLabel: "step",
    panels: [{
      yLabel: "loss",
      series: [{ name: "val_loss", points: [{ x: 1, y: 2.5 }, { x: 2, y: 0.0009 }] }],
    }],
  });
  checkXml(svg);
  assert.ok(svg.includes("loss (log scale)"));
  for (const t of ["1e-4", "0.001", "0.01", "0.1", ">1<", ">10<"]) assert.ok(svg.includes(t), t);
});

Deno.test("renderChart() breaks a line at NaN and leaves out series without a finite point", () => {
  const svg = renderChart({
    title: "t",
    xLabel: "step",
    panels: [{
      yLabel: "loss",
      series: [
        {
          name: "train_loss",
          points: [1, 2, 3, 4, 5, 6].map((x) => ({ x, y: x === 4 ? NaN : 7 - x })),
        },
        { name: "val_loss", points: [{ x: 2, y: Infinity }, { x: 4, y: NaN }] },
        { name: "empty", points: [] },
      ],
    }],
  });
  checkXml(svg);
  assert.equal(count(svg, /<polyline /g), 2);
  assert.equal(count(svg, /<circle /g), 5);
  assert.ok(!svg.includes("val_loss") && !svg.includes(">empty<"));
  assert.ok(coordinates(svg).every(Number.isFinite));
});

Deno.test("renderChart() draws one point as a dot on padded axes, and an empty panel says so", () => {
  const one = renderChart({
    title: "t",
    xLabel: "step",
    panels: [{ yLabel: "loss", series: [{ name: "train_loss", points: [{ x: 20, y: 2 }] }] }],
  });
  checkXml(one);
  assert.equal(count(one, /<polyline /g), 0);
  assert.equal(count(one, /<circle /g), 1);
  assert.ok(coordinates(one).every(Number.isFinite));
  const none = renderChart({
    title: "t",
    xLabel: "step",
    panels: [{ yLabel: "loss", series: [] }],
  });
  checkXml(none);
  assert.ok(none.includes("no data yet"));
  assert.ok(coordinates(none).every(Number.isFinite));
});

Deno.test("formatTick() prints round numbers plainly and tiny or huge ones with an exponent", () => {
  assert.equal(formatTick(0), "0");
  assert.equal(formatTick(800), "800");
  assert.equal(formatTick(0.001), "0.001");
  assert.equal(formatTick(0.0001), "1e-4");
  assert.equal(formatTick(2.5e6), "2.5e6");
  assert.equal(formatTick(0.1 * 3), "0.3");
});

Deno.test("metricsChart() draws losses, and path accuracy only when logged", () => {
  const rows = [
    { step: 10, epoch: 0, train_loss: 2.5, grad_norm: 1.2 },
    { step: 20, epoch: 0, train_loss: "NaN", val_loss: 2.1, path_accuracy: 0.25 },
  ];
  const chart = metricsChart(rows, "r");
  assert.deepEqual(chart.panels.map((p) => p.yLabel), ["loss", "path accuracy"]);
  const train = chart.panels[0].series.find((s) => s.name === "train_loss")!;
  assert.equal(train.points.length, 2);
  assert.ok(Number.isNaN(train.points[1].y));
  assert.ok(!chart.panels[0].series.some((s) => s.name === "grad_norm"));
  assert.equal(metricsChart(rows.slice(0, 1), "r").panels.length, 1);
});

Deno.test("writeCurves() replaces curves.svg atomically and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_curves_" });
  try {
    const path = await writeCurves(dir, [{ step: 1, epoch: 0, train_loss: 3 }], "first");
    assert.equal(path, `${dir}/${CURVES_SVG}`);
    await writeCurves(dir, [{ step: 1, epoch: 0, train_loss: 3 }], "second");
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(files, [CURVES_SVG]);
    const svg = await Deno.readTextFile(path);
    checkXml(svg);
    assert.ok(svg.includes("<title>second</title>"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
