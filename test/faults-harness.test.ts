import { describe, expect, it } from "vitest";
import { FAULT_SCENARIOS, parseFaultOptions } from "../bench/faults/options.ts";
import { codeList, markdownTable } from "../bench/faults/report.ts";

/** The parts of `npm run faults` that need no running service: its flags and its table. */
describe("fault harness options and report", () => {
  it("defaults to every scenario at full size, and --quick shrinks the long ones", () => {
    const full = parseFaultOptions([]);
    expect(full.scenarios).toEqual([...FAULT_SCENARIOS]);
    expect(full.outageSeconds).toBe(30);
    expect(full.fuzzRuns).toBe(2000);
    const quick = parseFaultOptions(["--quick", "--scenarios", "auth,outage", "--outage-seconds", "3"]);
    expect(quick.scenarios).toEqual(["outage", "auth"]);
    expect(quick.outageSeconds).toBe(3);
    expect(quick.fuzzRuns).toBe(100);
  });

  it("refuses an unknown scenario or a bad number, naming it", () => {
    expect(() => parseFaultOptions(["--scenarios", "outage,meteor"])).toThrow(/unknown scenario meteor/);
    expect(() => parseFaultOptions(["--outage-seconds", "0"])).toThrow(/--outage-seconds=0 is not a positive number/);
  });

  it("prints one markdown row per figure with its verdict", () => {
    const table = markdownTable([
      { scenario: "s", figure: "lost | stored", value: "1", target: "0", pass: false },
      { scenario: "s", figure: "f", value: "2", target: "", pass: null },
      { scenario: "s", figure: "g", value: "3", target: "3", pass: true },
    ]);
    const lines = table.split("\n");
    expect(lines).toHaveLength(5);
    expect(lines[2]).toBe("| s | lost \\| stored | 1 | 0 | **FAIL** |");
    expect(lines[3]).toContain("| measured |");
    expect(lines[4]).toContain("| PASS |");
    expect(
      codeList(
        new Map([
          ["OK", 2],
          ["Unavailable", 5],
        ]),
      ),
    ).toBe("Unavailable 5, OK 2");
    expect(codeList(new Map())).toBe("none");
  });
});
