// How a test's output is compared with the expected output, as the exec API's judge compares
// them (crates/submission/src/judge.rs): line by line, each line without the spaces, tabs and
// carriage returns at its end, blank lines at the end of either output not counted. The Tests
// panel's side-by-side diff highlights the lines this comparison finds different. No run-time
// imports: the tests load this module into Node (e2e/ide-project.test.mjs).

/** The lines of `output` as the comparison sees them. */
export function comparedLines(output: string): string[] {
  const lines = output.split('\n').map((line) => line.replace(/[ \t\r]+$/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Whether `actual` is the `expected` output. */
export function outputsMatch(expected: string, actual: string): boolean {
  const a = comparedLines(expected);
  const b = comparedLines(actual);
  return a.length === b.length && a.every((line, i) => line === b[i]);
}

/** One row of the side-by-side diff: line `line` (1-based) of each side as written (null past
 * that side's end), and whether the comparison finds them equal. */
export interface DiffRow {
  line: number;
  expected: string | null;
  actual: string | null;
  same: boolean;
}

/** The rows of the side-by-side diff of `expected` and `actual`: lines side by side by number,
 * as the judge pairs them (no realignment), up to the longer side's last compared line. */
export function diffRows(expected: string, actual: string): DiffRow[] {
  const compared = [comparedLines(expected), comparedLines(actual)];
  const written = [expected, actual].map((text) => text.split('\n').map((line) => line.replace(/\r$/, '')));
  const rows: DiffRow[] = [];
  const count = Math.max(compared[0].length, compared[1].length);
  for (let i = 0; i < count; i++) {
    rows.push({
      line: i + 1,
      expected: i < compared[0].length ? written[0][i] : null,
      actual: i < compared[1].length ? written[1][i] : null,
      same: i < compared[0].length && i < compared[1].length && compared[0][i] === compared[1][i],
    });
  }
  return rows;
}
