import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../src/metrics.ts";

/**
 * The Grafana dashboard in dashboards/ imports (the fields Grafana's dashboard
 * schema requires, a datasource input to bind on import, panels on its
 * 24-column grid without overlaps) and every query names a series the
 * service really exports, so a renamed metric breaks this test, not a
 * dashboard in production.
 */
const dashboard = JSON.parse(readFileSync(new URL("../dashboards/ml-service.json", import.meta.url), "utf8")) as {
  __inputs: { name: string; type: string; pluginId: string }[];
  title: string;
  uid: string;
  schemaVersion: number;
  time: { from: string; to: string };
  panels: {
    id: number;
    type: string;
    title: string;
    datasource: { type: string; uid: string };
    gridPos: { x: number; y: number; w: number; h: number };
    targets: { refId: string; expr: string; datasource: { uid: string } }[];
  }[];
};

describe("the Grafana dashboard", () => {
  it("has what Grafana's import needs", () => {
    expect(dashboard.title).not.toBe("");
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36).toBe(true);
    expect(dashboard.time).toEqual({ from: "now-1h", to: "now" });
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" })]);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      expect(["timeseries", "stat", "gauge"]).toContain(p.type);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's import placeholder, literally.
      expect(p.datasource).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, p.title).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps another panel`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
      expect(p.targets.length).toBeGreaterThan(0);
      expect(new Set(p.targets.map((t) => t.refId)).size).toBe(p.targets.length);
    }
  });

  it("queries only series the service exports", async () => {
    const metrics = createMetrics();
    const stats = { size: 0, bytes: 0, hits: 0, misses: 0 };
    metrics.watch({
      modelCache: stats,
      activeModels: { size: 0, hits: 0, misses: 0 },
      predictionLog: { pending: 0 },
      trainQueue: () => ({ waiting: 0, running: 0 }),
      dbPool: () => ({ acquiredConnections: 0, idleConnections: 0, waitingClients: 0 }),
    });
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const queried = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\b(?:ml|nodejs|process)_[a-z0-9_]+/g) ?? []));
    expect(queried.length).toBeGreaterThan(10);
    for (const name of queried) {
      const base = name.replace(/_(bucket|count|sum)$/, "");
      expect(exported.has(name) || exported.has(base), name).toBe(true);
    }
  });
});
