/**
 * Loss-curve pictures: a small hand-written SVG writer (no dependencies) that draws a run's
 * logged metrics against the optimizer step, so a user opens `curves.svg` in a browser next
 * to `metrics.csv`.
 *
 * The picture has one panel for the losses (`train_loss`, `val_loss`, `val_loss_next_token`,
 * `val_loss_prev_token`) and, when the run logs it, a second panel for `path_accuracy` (0 to
 * 1). Each panel has a framed plot area with grid lines, ticked and labelled axes, a legend
 * and one polyline per series; sparse series (validation) also get a dot per point, so a
 * single point is visible. The loss axis is logarithmic when every loss is positive and the
 * largest is more than 100 times the smallest (BST pair losses fall to 1e-3 while the
 * evaluation losses stay near 10), linear otherwise. Points that are not finite (`NaN`,
 * `Infinity`) are left out and break the line; a series without a finite point is left out
 * of the plot and the legend; a panel without any point says "no data yet".
 *
 * @module
 */

import { join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";
import type { MetricValue } from "./metrics.ts";

/** File name of the curves picture in the run directory. */
export const CURVES_SVG = "curves.svg";

/** One line of a chart: a name for the legend and (x, y) points in x order. */
export interface Series {
  name: string;
  points: readonly { x: number; y: number }[];
}

/** One panel: a y axis and its series. */
export interface Panel {
  /** The y axis label. */
  yLabel: string;
  series: readonly Series[];
  /** Axis scale: "auto" (default) picks log for positive data spanning more than 100×. */
  scale?: "auto" | "linear" | "log";
  /** A fixed y range (e.g. [0, 1] for an accuracy), instead of one fitted to the data. */
  yRange?: readonly [number, number];
}

/** A chart: a title, an x axis label, and panels stacked top to bottom sharing the x axis. */
export interface Chart {
  title: string;
  xLabel: string;
  panels: readonly Panel[];
}

const WIDTH = 860;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 78, right: 190, top: 44, bottom: 50, gap: 46 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"];
/** Series with at most this many points get a dot per point. */
const DOT_LIMIT = 60;

/** Escapes text for XML content and attribute values. */
function xml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** A coordinate with at most two decimals. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Whether a point can be drawn (both coordinates finite). */
function isFinitePoint(p: { x: number; y: number }): boolean {
  return Number.isFinite(p.x) && Number.isFinite(p.y);
}

/** Runs of consecutive finite points: a point that is not finite ends a run. */
function finiteRuns(points: readonly { x: number; y: number }[]): { x: number; y: number }[][] {
  const runs: { x: number; y: number }[][] = [[]];
  for (const p of points) {
    if (isFinitePoint(p)) runs.at(-1)!.push(p);
    else if (runs.at(-1)!.length > 0) runs.push([]);
  }
  return runs.filter((r) => r.length > 0);
}

/** A step of 1, 2 or 5 × 10^k giving about `target` intervals over `span`. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  const m = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return m * p;
}

/**
 * A tick label: plain decimals in [1e-3, 1e5), else exponent form (`"1e-4"`, `"2.5e6"`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTick } from "./curves.ts";
 * assert.equal(formatTick(0.25), "0.25");
 * assert.equal(formatTick(1e-4), "1e-4");
 * assert.equal(formatTick(0.1 + 0.2), "0.3");
 * ```
 */
export function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(6)));
  return Number(v.toPrecision(6)).toExponential().replace("e+", "e");
}

/** An axis: its domain, ticks and the map to pixels. */
interface Axis {
  lo: number;
  hi: number;
  ticks: number[];
  log: boolean;
}

function linearAxis(min: number, max: number, target: number, integer = false): Axis {
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  let step = niceStep(max - min, target);
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) {
    ticks.push(Number((lo + i * step).toPrecision(12)));
  }
  return { lo, hi, ticks, log: false };
}

function logAxis(min: number, max: number): Axis {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) ticks.push(Number((10 ** e).toPrecision(12)));
  return { lo: 10 ** lo, hi: 10 ** hi, ticks, log: true };
}

/**
 * The y scale a panel uses: log when asked, or for "auto" when every value is positive and
 * the largest is more than 100 times the smallest; linear otherwise (and for no data).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseScale } from "./curves.ts";
 * assert.equal(chooseScale([3.2, 0.001]), "log");
 * assert.equal(chooseScale([3.2, 0.5]), "linear");
 * ```
 */
export function chooseScale(
  values: readonly number[],
  scale: "auto" | "linear" | "log" = "auto",
): "linear" | "log" {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0 || finite.some((v) => v <= 0)) return "linear";
  if (scale !== "auto") return scale;
  return Math.max(...finite) > 100 * Math.min(...finite) ? "log" : "linear";
}

function toPixel(axis: Axis, v: number, from: number, to: number): number {
  const t = axis.log
    ? (Math.log10(v) - Math.log10(axis.lo)) / (Math.log10(axis.hi) - Math.log10(axis.lo))
    : (v - axis.lo) / (axis.hi - axis.lo);
  return from + t * (to - from);
}

/**
 * Draws a chart as a standalone SVG document (see the module description).
 *
 * @param chart Title, x label and panels.
 * @returns The SVG text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChart } from "./curves.ts";
 * const svg = renderChart({
 *   title: "run",
 *   xLabel: "step",
 *   panels: [{ yLabel: "loss", series: [{ name: "train_loss", points: [{ x: 10, y: 2.5 }] }] }],
 * });
 * assert(svg.startsWith("<?xml") && svg.includes("train_loss"));
 * ```
 */
export function renderChart(chart: Chart): string {
  const panels = chart.panels.map((p) => ({
    ...p,
    series: p.series.map((s) => ({ name: s.name, runs: finiteRuns(s.points) }))
      .filter((s) => s.runs.length > 0)
      .map((s, i) => ({ ...s, color: COLORS[i % COLORS.length] })),
  }));
  const xs = panels.flatMap((p) => p.series.flatMap((s) => s.runs.flat().map((q) => q.x)));
  const xAxis = xs.length === 0
    ? linearAxis(0, 1, 5, true)
    : linearAxis(Math.min(...xs), Math.max(...xs), 8, true);
  const height = MARGIN.top + panels.length * PANEL_HEIGHT +
    Math.max(0, panels.length - 1) * MARGIN.gap + MARGIN.bottom;
  const x0 = MARGIN.left;
  const x1 = WIDTH - MARGIN.right;
  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${xml(chart.title)}</title>`,
    `<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="${px((x0 + x1) / 2)}" y="26" text-anchor="middle" font-size="16" ` +
    `font-weight="bold">${xml(chart.title)}</text>`,
  ];
  panels.forEach((panel, index) => {
    const top = MARGIN.top + index * (PANEL_HEIGHT + MARGIN.gap);
    const y0 = top + PANEL_HEIGHT; // bottom of the plot area
    const ys = panel.series.flatMap((s) => s.runs.flat().map((q) => q.y));
    const scale = chooseScale(ys, panel.scale);
    const yAxis = panel.yRange
      ? linearAxis(panel.yRange[0], panel.yRange[1], 5)
      : ys.length === 0
      ? linearAxis(0, 1, 5)
      : scale === "log"
      ? logAxis(Math.min(...ys), Math.max(...ys))
      : linearAxis(Math.min(...ys), Math.max(...ys), 6);
    const X = (v: number) => toPixel(xAxis, v, x0, x1);
    const Y = (v: number) => toPixel(yAxis, v, y0, top);
    out.push(`<g class="panel">`);
    // Grid and ticks.
    for (const t of yAxis.ticks) {
      const y = px(Y(t));
      out.push(
        `<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e3e3e3"/>`,
        `<line x1="${x0 - 5}" y1="${y}" x2="${x0}" y2="${y}" stroke="#333333"/>`,
        `<text x="${x0 - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">` +
          `${xml(formatTick(t))}</text>`,
      );
    }
    for (const t of xAxis.ticks) {
      const x = px(X(t));
      out.push(
        `<line x1="${x}" y1="${top}" x2="${x}" y2="${y0}" stroke="#e3e3e3"/>`,
        `<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="#333333"/>`,
        `<text x="${x}" y="${y0 + 18}" text-anchor="middle">${xml(formatTick(t))}</text>`,
      );
    }
    out.push(
      `<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${PANEL_HEIGHT}" fill="none" ` +
        `stroke="#333333"/>`,
      `<text x="${px(x0 - 58)}" y="${px(top + PANEL_HEIGHT / 2)}" text-anchor="middle" ` +
        `transform="rotate(-90 ${px(x0 - 58)} ${px(top + PANEL_HEIGHT / 2)})">` +
        `${xml(panel.yLabel + (scale === "log" ? " (log scale)" : ""))}</text>`,
      `<text x="${px((x0 + x1) / 2)}" y="${y0 + 38}" text-anchor="middle">` +
        `${xml(chart.xLabel)}</text>`,
    );
    if (panel.series.length === 0) {
      out.push(
        `<text x="${px((x0 + x1) / 2)}" y="${px(top + PANEL_HEIGHT / 2)}" ` +
          `text-anchor="middle" fill="#888888">no data yet</text>`,
      );
    }
    // One polyline per run of finite points; dots on sparse series.
    for (const s of panel.series) {
      const runs = s.runs.map((r) => r.map((q) => ({ x: px(X(q.x)), y: px(Y(q.y)) })));
      out.push(`<g class="series" stroke="${s.color}" fill="${s.color}">`);
      for (const r of runs.filter((r) => r.length > 1)) {
        const points = r.map((q) => `${q.x},${q.y}`).join(" ");
        out.push(`<polyline fill="none" stroke-width="1.8" points="${points}"/>`);
      }
      if (runs.flat().length <= DOT_LIMIT) {
        for (const q of runs.flat()) {
          out.push(`<circle cx="${q.x}" cy="${q.y}" r="2.8" stroke="none"/>`);
        }
      }
      out.push(`</g>`);
    }
    // Legend, right of the plot area.
    panel.series.forEach((s, i) => {
      const ly = top + 14 + i * 20;
      out.push(
        `<line x1="${x1 + 14}" y1="${ly}" x2="${x1 + 38}" y2="${ly}" stroke="${s.color}" ` +
          `stroke-width="2.5"/>`,
        `<text x="${x1 + 44}" y="${ly}" dominant-baseline="middle">${xml(s.name)}</text>`,
      );
    });
    out.push(`</g>`);
  });
  out.push(`</svg>`, "");
  return out.join("\n");
}

/** Loss columns drawn in the first panel, in legend order. */
export const LOSS_COLUMNS = [
  "train_loss",
  "val_loss",
  "val_loss_next_token",
  "val_loss_prev_token",
] as const;

/** The column drawn in the second panel when any row has it. */
export const ACCURACY_COLUMN = "path_accuracy";

const NON_FINITE = new Set(["NaN", "Infinity", "-Infinity"]);

/**
 * The (step, value) points of a metrics column: rows where it is a number, or a non-finite
 * number in the JSONL form (`"NaN"`, `"Infinity"`, `"-Infinity"`), which breaks the line.
 */
function column(rows: readonly Record<string, MetricValue>[], key: string): Series {
  const points: { x: number; y: number }[] = [];
  for (const r of rows) {
    const v = r[key];
    if (typeof r.step !== "number") continue;
    if (typeof v === "number") points.push({ x: r.step, y: v });
    else if (typeof v === "string" && NON_FINITE.has(v)) points.push({ x: r.step, y: Number(v) });
  }
  return { name: key, points };
}

/**
 * The chart of a run's metrics rows (as {@linkcode MetricsLogger} keeps them): losses, then
 * path accuracy when logged, against the step.
 *
 * @param rows Metrics rows with a numeric `step`.
 * @param title The chart title.
 * @returns The chart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsChart } from "./curves.ts";
 * const chart = metricsChart([{ step: 10, train_loss: 2.1 }, { step: 20, path_accuracy: 0.5 }], "r");
 * assert.equal(chart.panels.length, 2);
 * ```
 */
export function metricsChart(rows: readonly Record<string, MetricValue>[], title: string): Chart {
  const losses = LOSS_COLUMNS.map((k) => column(rows, k));
  const panels: Panel[] = [{ yLabel: "loss", series: losses }];
  const accuracy = column(rows, ACCURACY_COLUMN);
  if (accuracy.points.some(isFinitePoint)) {
    panels.push({ yLabel: "path accuracy", series: [accuracy], scale: "linear", yRange: [0, 1] });
  }
  return { title, xLabel: "step (optimizer updates)", panels };
}

/**
 * Writes `curves.svg` for a run's metrics rows into `dir`, atomically (temporary file and
 * rename), so a browser never sees half a picture.
 *
 * Requires `--allow-write` for `dir`.
 *
 * @param dir The run directory.
 * @param rows Its metrics rows.
 * @param title The chart title.
 * @returns The path written.
 *
 * @example
 * ```ts ignore
 * import { writeCurves } from "./curves.ts";
 * await writeCurves("out/2026-11-27_07-31-12", metrics.rows, "BST on stargraph");
 * ```
 */
export async function writeCurves(
  dir: string,
  rows: readonly Record<string, MetricValue>[],
  title: string,
): Promise<string> {
  const path = join(dir, CURVES_SVG);
  await writeTextFileAtomic(path, renderChart(metricsChart(rows, title)));
  return path;
}
