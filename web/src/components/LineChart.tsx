/**
 * A small SVG line chart over time: one or more series, an optional limit series drawn
 * dashed, value and time axis labels, a tooltip on every point (its <title>), and an
 * empty state. Times are shown in the operator's time zone.
 */
import { useEffect, useRef, useState, type RefObject } from "react";

import { formatNumber, formatTime } from "../lib/format";

export interface ChartPoint {
  /** An ISO time. */
  at: string;
  value: number | null;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
  /** A limit line: dashed, in the danger colour. */
  limit?: boolean;
}

interface Props {
  /** The chart's accessible name. */
  title: string;
  series: ChartSeries[];
  /** The value axis' label (its unit). */
  unit: string;
  formatValue?: (value: number) => string;
  /** Shown instead of the chart when no series has a value. */
  empty: string;
}

const HEIGHT = 190;
const PAD = { top: 12, right: 14, bottom: 26, left: 60 };
const PLOT_H = HEIGHT - PAD.top - PAD.bottom;

/** The least of 1, 2 or 5 times a power of ten that is above `value` (the axis' top). */
function niceCeiling(value: number): number {
  if (value <= 0) {
    return 1;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((multiple) => multiple * power > value) ?? 10;
  return step * power;
}

/** The element's width in CSS pixels, so the chart's text keeps its size at any width. */
function useWidth<T extends Element>(initial: number): [RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    const element = ref.current;
    if (element === null) {
      return;
    }
    const observer = new ResizeObserver(([entry]) => {
      if (entry !== undefined && entry.contentRect.width > 0) {
        setWidth(Math.round(entry.contentRect.width));
      }
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
    };
  }, []);
  return [ref, width];
}

/** Each series' colour class: limits dashed, the others coloured in turn. */
function seriesClasses(series: ChartSeries[]): string[] {
  let plotted = 0;
  return series.map((line) => (line.limit === true ? "chart-limit" : `chart-series-${plotted++ % 4}`));
}

export function LineChart({ title, series, unit, formatValue = formatNumber, empty }: Props) {
  const [ref, width] = useWidth<HTMLElement>(600);
  const values = series.flatMap((line) => line.points.flatMap((point) => (point.value === null ? [] : [point.value])));
  const times = series.flatMap((line) => line.points.map((point) => Date.parse(point.at)));
  if (values.length === 0) {
    return (
      <figure className="chart" ref={ref}>
        <figcaption className="chart-title">{title}</figcaption>
        <div className="chart-empty" data-testid="chart-empty">
          {empty}
        </div>
      </figure>
    );
  }

  const plotWidth = Math.max(width - PAD.left - PAD.right, 40);
  const first = Math.min(...times);
  const last = Math.max(...times);
  const top = Math.max(...values, 0);
  const bottom = Math.min(...values, 0);
  const yMax = niceCeiling(top);
  const yMin = bottom < 0 ? -niceCeiling(-bottom) : 0;
  const x = (at: string) => PAD.left + (last === first ? plotWidth / 2 : ((Date.parse(at) - first) / (last - first)) * plotWidth);
  const y = (value: number) => PAD.top + PLOT_H - ((value - yMin) / (yMax - yMin)) * PLOT_H;
  const ticks = [yMin, (yMin + yMax) / 2, yMax];
  const classes = seriesClasses(series);

  return (
    <figure className="chart" ref={ref}>
      <figcaption className="chart-title">{title}</figcaption>
      <svg viewBox={`0 0 ${PAD.left + plotWidth + PAD.right} ${HEIGHT}`} role="img" aria-label={title} className="chart-svg">
        {ticks.map((tick) => (
          <g key={tick}>
            <line className="chart-grid" x1={PAD.left} x2={PAD.left + plotWidth} y1={y(tick)} y2={y(tick)} />
            <text className="chart-axis" x={PAD.left - 6} y={y(tick) + 4} textAnchor="end">
              {formatValue(tick)}
            </text>
          </g>
        ))}
        <text className="chart-axis" x={12} y={PAD.top + PLOT_H / 2} textAnchor="middle" transform={`rotate(-90 12 ${PAD.top + PLOT_H / 2})`}>
          {unit}
        </text>
        <text className="chart-axis" x={PAD.left} y={HEIGHT - 6} textAnchor="start">
          {formatTime(new Date(first).toISOString())}
        </text>
        <text className="chart-axis" x={PAD.left + plotWidth} y={HEIGHT - 6} textAnchor="end">
          {formatTime(new Date(last).toISOString())}
        </text>
        {series.map((line, index) => {
          const defined = line.points.filter((point): point is { at: string; value: number } => point.value !== null);
          return (
            <g key={line.name} className={classes[index]}>
              <polyline
                fill="none"
                points={defined.map((point) => `${x(point.at).toFixed(1)},${y(point.value).toFixed(1)}`).join(" ")}
              />
              {defined.map((point) => (
                <circle key={point.at} cx={x(point.at)} cy={y(point.value)} r={line.limit === true ? 2 : 3}>
                  <title>{`${line.name} at ${formatTime(point.at)}: ${formatValue(point.value)} ${unit}`}</title>
                </circle>
              ))}
            </g>
          );
        })}
      </svg>
      <ul className="chart-legend">
        {series.map((line, index) => (
          <li key={line.name}>
            <span className={`chart-swatch ${classes[index]}`} aria-hidden="true" />
            {line.name}
          </li>
        ))}
      </ul>
    </figure>
  );
}
